import { Result } from "effect"
import { describe, expect, it } from "vitest"
import { decodeUnknown } from "../src/Decode.js"
import {
  assetIdsOf,
  ExportAsset,
  ExportedAssetIds,
  ExportMetadata,
  exportWallEndMs,
  videoSecondsAt,
} from "../src/ExportMetadata.js"
import { checkRoundTrip } from "./roundTrip.js"

const asset = {
  asset_id: "a-01JC000000ABCDEFGHJKMNPQRS",
  channel_id: "mic:default",
  type: "audio",
  file: "raw/mic_default.m4a",
  content_type: "audio/mp4",
  bytes: 1234,
  start_ms: 1_763_000_000_000,
  start_time: "2025-11-13T02:13:20.000Z",
  duration_ms: 8000,
  segments: 4,
  gaps: [],
}

describe("ExportMetadata", () => {
  it("round-trips, with raw assets of both types", async () => {
    const seen = await checkRoundTrip(ExportMetadata, 100)
    const types = new Set(seen.flatMap((m) => m.channels.map((c) => c.type)))
    expect(types).toEqual(new Set(["audio", "video"]))
  })

  it("round-trips channel → asset id maps", async () => {
    const seen = await checkRoundTrip(ExportedAssetIds, 200)
    const ids = seen.flatMap((m) => Object.values(m))
    expect(ids.some((id) => id.startsWith("m-"))).toBe(true)
    expect(ids.some((id) => id.startsWith("a-"))).toBe(true)
  })

  it("requires a raw asset's id, and refuses one of another kind", () => {
    expect(Result.isSuccess(decodeUnknown(ExportAsset)(asset))).toBe(true)
    const { asset_id: _, ...withoutId } = asset
    expect(decodeUnknown(ExportAsset)(withoutId)).toMatchObject({
      failure: { error_code: "missing_field", field: "asset_id" },
    })
    expect(Result.isFailure(decodeUnknown(ExportAsset)({ ...asset, asset_id: "rts-1" }))).toBe(true)
  })

  it("keeps channel ids as keys (others are dropped at the edge) and refuses other ids as values", () => {
    const ids = { "display:1": "m-1", "mic:default": "a-2" }
    expect(decodeUnknown(ExportedAssetIds)(ids)).toMatchObject({ success: ids })
    expect(decodeUnknown(ExportedAssetIds)({ ...ids, speaker: "a-3" })).toMatchObject({ success: ids })
    expect(Result.isFailure(decodeUnknown(ExportedAssetIds)({ "mic:default": "x-2" }))).toBe(true)
    expect(Result.isFailure(decodeUnknown(ExportedAssetIds)({ "mic:default": "rts-2" }))).toBe(true)
  })

  it("decodes metadata made before pauses were cut, and the paused spans of newer exports", () => {
    const older = {
      video_id: "m-01JC000000ABCDEFGHJKMNPQRS",
      session_id: "cap-01JC000000ABCDEFGHJKMNPQRS",
      video_channel_id: null,
      created_at: "2025-11-13T02:13:30.000Z",
      start_ms: asset.start_ms,
      start_time: asset.start_time,
      duration_ms: 8000,
      stream: "index.m3u8",
      download: "video.mp4",
      bytes: 5678,
      audio_channel_ids: ["mic:default"],
      channels: [asset],
      gaps: [],
    }
    expect(Result.isSuccess(decodeUnknown(ExportMetadata)(older))).toBe(true)
    const paused_spans = [
      { start_ms: asset.start_ms + 2000, end_ms: asset.start_ms + 3000 },
      { start_ms: asset.start_ms + 7000, end_ms: null },
    ]
    expect(
      decodeUnknown(ExportMetadata)({ ...older, duration_ms: 6000, paused_spans, paused_ms_removed: 2000 }),
    ).toMatchObject({ success: { paused_spans, paused_ms_removed: 2000 } })
    expect(decodeUnknown(ExportMetadata)({ ...older, paused_ms_removed: -1 })).toMatchObject({
      failure: { field: "paused_ms_removed" },
    })
  })

  it("lists an export's asset ids by channel", () => {
    const decoded = decodeUnknown(ExportAsset)(asset)
    if (Result.isFailure(decoded)) throw new Error(decoded.failure.message)
    expect(assetIdsOf({ channels: [decoded.success] })).toEqual({ "mic:default": asset.asset_id })
  })

  it("places a wall-clock time on the video's timeline, closing over the paused time cut out", () => {
    const t0 = 1_763_000_000_000
    const plain = { start_ms: t0, duration_ms: 30_000 }
    expect(videoSecondsAt(plain, t0 + 12_345)).toBe(12.345)
    expect(videoSecondsAt(plain, t0 - 5_000)).toBe(0)
    expect(videoSecondsAt(plain, t0 + 60_000)).toBe(30)
    // Paused from 10 s to 15 s of the recording, and from 25 s to the end (open).
    const paused = {
      start_ms: t0,
      duration_ms: 20_000,
      paused_ms_removed: 10_000,
      paused_spans: [
        { start_ms: t0 + 10_000, end_ms: t0 + 15_000 },
        { start_ms: t0 + 25_000, end_ms: null },
      ],
    }
    expect(videoSecondsAt(paused, t0 + 9_000)).toBe(9)
    expect(videoSecondsAt(paused, t0 + 12_000)).toBe(10)
    expect(videoSecondsAt(paused, t0 + 15_000)).toBe(10)
    expect(videoSecondsAt(paused, t0 + 20_000)).toBe(15)
    expect(videoSecondsAt(paused, t0 + 27_000)).toBe(20)
    expect(exportWallEndMs(paused)).toBe(t0 + 30_000)
    // A pause before the export began takes nothing off.
    expect(
      videoSecondsAt({ ...plain, paused_spans: [{ start_ms: t0 - 9_000, end_ms: t0 }] }, t0 + 1_000),
    ).toBe(1)
  })
})
