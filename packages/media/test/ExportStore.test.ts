import {
  type AssetId,
  type ExportAsset,
  type ExportMetadata,
  newSessionId,
  newVideoId,
  rawAssetId,
  type VideoId,
} from "@capture/protocol"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  assetIndexName,
  boxes,
  ExportBucket,
  type ExportFile,
  ExportStore,
  MANIFEST_CHUNK_PARTS,
  type Manifest,
  type ManifestFile,
  type ManifestPart,
  manifestChunkPrefix,
  manifestName,
  RangeNotSatisfiable,
  type StoredManifest,
} from "../src/index.js"
import { concat, declaredDurations, fragment, fragmentsOf, init } from "./fragments.js"

let nats: NatsServerHandle
let nc: NatsConnection
let bucket: ExportBucket
let exports: ExportStore

beforeAll(async () => {
  nats = await startNatsServer()
  nc = await connect({ servers: nats.url })
  bucket = await ExportBucket.open(nc)
  exports = await ExportStore.open(nc)
})
afterAll(async () => {
  await nc?.close()
  await nats?.stop()
})

const sessionId = newSessionId()

// Pieces as the muxer stores them: each made alone, on track 1 from decode time 0.
const pieces = {
  video0: {
    name: `pieces/${sessionId}/raw/display:1/0.m4s`,
    data: concat([fragment(0, "v0a"), fragment(512, "v0b")]),
  },
  video1: { name: `pieces/${sessionId}/raw/display:1/1.m4s`, data: fragment(0, "v1a") },
  mic0: {
    name: `pieces/${sessionId}/raw/mic:default/0.m4s`,
    data: concat([fragment(0, "m0a"), fragment(1024, "m0b")]),
  },
}
type PieceName = keyof typeof pieces

const part = (piece: PieceName, place: Omit<ManifestPart, "name" | "bytes">): ManifestPart => ({
  name: pieces[piece].name,
  bytes: pieces[piece].data.length,
  ...place,
})

const asset = (
  videoId: VideoId,
  channel: "display:1" | "mic:default",
  file: string,
  type: "video" | "audio",
) =>
  ({
    asset_id: rawAssetId(videoId, channel, type),
    channel_id: channel,
    type,
    file,
    content_type: type === "video" ? "video/mp4" : "audio/mp4",
    bytes: 100,
    start_ms: 1_700_000_000_000,
    start_time: new Date(1_700_000_000_000).toISOString(),
    duration_ms: 3_000,
    segments: 2,
    gaps: [],
  }) as ExportAsset

const metadataOf = (videoId: VideoId): ExportMetadata =>
  ({
    video_id: videoId,
    session_id: sessionId,
    video_channel_id: "display:1",
    created_at: new Date().toISOString(),
    start_ms: 1_700_000_000_000,
    start_time: new Date(1_700_000_000_000).toISOString(),
    duration_ms: 3_000,
    stream: "index.m3u8",
    download: "video.mp4",
    bytes: 1_000,
    audio_channel_ids: ["mic:default"],
    channels: [
      asset(videoId, "display:1", "raw/display_1.mp4", "video"),
      asset(videoId, "mic:default", "raw/mic_default.m4a", "audio"),
    ],
    gaps: [],
  }) as unknown as ExportMetadata

/** Stores an export as the muxer does: pieces, inits, the asset index, the manifest last. */
const storeExport = async (
  options: { readonly withoutAssetIds?: boolean; readonly missingPiece?: boolean } = {},
) => {
  const videoId = newVideoId()
  for (const piece of Object.values(pieces)) await bucket.putObject(piece.name, piece.data)
  const videoInit = { name: `videos/${videoId}/init.mp4`, bytes: init("video+mic").length }
  const displayInit = { name: `videos/${videoId}/raw/display_1.init.mp4`, bytes: init("display").length }
  const micInit = { name: `videos/${videoId}/raw/mic_default.init.mp4`, bytes: init("mic").length }
  await bucket.putObject(videoInit.name, init("video+mic"))
  await bucket.putObject(displayInit.name, init("display"))
  await bucket.putObject(micInit.name, init("mic"))
  const raw: ManifestFile[] = [
    {
      file: "raw/display_1.mp4",
      contentType: "video/mp4",
      init: displayInit,
      parts: [
        part("video0", { moofs: 2, track: 1, base: 0, duration: 1024, seq: 1 }),
        part("video1", { moofs: 1, track: 1, base: 1024, duration: 512, seq: 3 }),
      ],
    },
    {
      file: "raw/mic_default.m4a",
      contentType: "audio/mp4",
      init: micInit,
      parts: [part("mic0", { moofs: 2, track: 1, base: 0, duration: 2048, seq: 1 })],
    },
  ]
  const metadata = metadataOf(videoId)
  const manifest: Manifest = {
    v: 1,
    metadata,
    video: {
      file: "video.mp4",
      contentType: "video/mp4",
      init: videoInit,
      parts: [
        part("video0", { moofs: 2, track: 1, base: 0, duration: 1024, seq: 1 }),
        part("mic0", { moofs: 2, track: 2, base: 0, duration: 2048, seq: 3 }),
        options.missingPiece === true
          ? {
              name: `pieces/${sessionId}/never-stored.m4s`,
              bytes: 10,
              moofs: 1,
              track: 1,
              base: 1024,
              duration: 512,
              seq: 5,
            }
          : part("video1", { moofs: 1, track: 1, base: 1024, duration: 512, seq: 5 }),
      ],
    },
    segments: [
      { duration: 2, first: 0, count: 2 },
      { duration: 1.5, first: 2, count: 1 },
    ],
    raw,
  }
  if (options.withoutAssetIds === true) {
    const stored: StoredManifest = {
      ...manifest,
      metadata: { ...metadata, channels: metadata.channels.map(({ asset_id: _, ...rest }) => rest) },
    }
    await bucket.putJson(manifestName(videoId), stored)
  } else {
    for (const a of metadata.channels)
      await bucket.putJson(assetIndexName(a.asset_id), { asset_id: a.asset_id, video_id: videoId })
    await bucket.putJson(manifestName(videoId), manifest)
  }
  return { videoId, metadata }
}

const opened = async (videoId: string, file: string, range?: { start: number; end?: number }) => {
  const found = await exports.open(videoId, file, range)
  if (found === undefined) throw new Error(`${file} is not served`)
  return found
}

const streamed = async (file: ExportFile) => {
  const chunks: Uint8Array[] = []
  for await (const chunk of file.body) chunks.push(chunk)
  return concat(chunks)
}

/** A file's whole body as a plain Uint8Array (`bytes()` gives a Buffer), to compare bytes. */
const bytesOf = async (file: ExportFile) => new Uint8Array(await file.bytes())

describe("ExportStore", () => {
  it("reads the exports bucket", () => {
    expect(exports.bucket).toBe("capture_exports")
  })

  it("answers an export's metadata and the files it serves", async () => {
    const { videoId, metadata } = await storeExport()
    expect(await exports.get(videoId)).toEqual(metadata)
    expect(await exports.files(videoId)).toEqual([
      "export.json",
      "index.m3u8",
      "init.mp4",
      "video.mp4",
      "seg/0.m4s",
      "seg/1.m4s",
      "raw/display_1.mp4",
      "raw/mic_default.m4a",
    ])
    const json = await opened(videoId, "export.json")
    expect(json.contentType).toBe("application/json")
    expect(JSON.parse(new TextDecoder().decode(await json.bytes()))).toEqual(metadata)
  })

  it("writes the HLS playlist from the manifest's segments", async () => {
    const { videoId } = await storeExport()
    const playlist = await opened(videoId, "index.m3u8")
    expect(playlist.contentType).toBe("application/vnd.apple.mpegurl")
    expect(new TextDecoder().decode(await playlist.bytes())).toBe(
      [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        '#EXT-X-MAP:URI="init.mp4"',
        "#EXTINF:2.000000,",
        "seg/0.m4s",
        "#EXTINF:1.500000,",
        "seg/1.m4s",
        "#EXT-X-ENDLIST",
        "",
      ].join("\n"),
    )
  })

  it("writes the playlist of a timeline's ranges: the segments holding them, started at the first range", async () => {
    const { videoId } = await storeExport()
    const of = async (timeline: ReadonlyArray<readonly [number, number]>) => {
      const file = await exports.rangePlaylist(videoId, timeline)
      if (file === undefined) return undefined
      expect(file.contentType).toBe("application/vnd.apple.mpegurl")
      return new TextDecoder()
        .decode(await file.bytes())
        .split("\n")
        .filter(
          (line) =>
            line.startsWith("#EXT-X-START") || line.startsWith("#EXT-X-DISC") || line.startsWith("seg/"),
        )
    }
    // Segments: 0 → [0, 2), 1 → [2, 3.5).
    expect(await of([[2.5, 3]])).toEqual(["#EXT-X-START:TIME-OFFSET=0.500,PRECISE=YES", "seg/1.m4s"])
    expect(await of([[0.25, 2.5]])).toEqual([
      "#EXT-X-START:TIME-OFFSET=0.250,PRECISE=YES",
      "seg/0.m4s",
      "seg/1.m4s",
    ])
    // Overlapping ranges share a segment once; a range earlier than the last starts a discontinuity.
    expect(
      await of([
        [0, 1],
        [1.5, 3],
      ]),
    ).toEqual(["#EXT-X-START:TIME-OFFSET=0.000,PRECISE=YES", "seg/0.m4s", "seg/1.m4s"])
    expect(
      await of([
        [2.2, 3],
        [0, 1],
      ]),
    ).toEqual([
      "#EXT-X-START:TIME-OFFSET=0.200,PRECISE=YES",
      "seg/1.m4s",
      "#EXT-X-DISCONTINUITY",
      "seg/0.m4s",
    ])
    expect(await of([[10, 20]])).toBeUndefined()
    expect(await exports.rangePlaylist("m-NOSUCHEXPORT", [[0, 1]])).toBeUndefined()
  })

  it("assembles video.mp4 from its init and the stored pieces, each stamped for its place", async () => {
    const { videoId } = await storeExport()
    const video = await opened(videoId, "video.mp4")
    const whole = await bytesOf(video)
    const head = init("video+mic")
    expect(video.contentType).toBe("video/mp4")
    expect([video.size, video.start, video.end]).toEqual([whole.length, 0, whole.length - 1])
    expect(whole.subarray(0, head.length)).toEqual(head)
    expect(fragmentsOf(whole.subarray(head.length))).toEqual([
      { sequence: 1, track: 1, time: 0, data: "v0a" },
      { sequence: 2, track: 1, time: 512, data: "v0b" },
      { sequence: 3, track: 2, time: 0, data: "m0a" },
      { sequence: 4, track: 2, time: 1024, data: "m0b" },
      { sequence: 5, track: 1, time: 1024, data: "v1a" },
    ])
    expect(await streamed(await opened(videoId, "video.mp4"))).toEqual(whole)
    // The stored pieces are left as the muxer made them.
    expect(await bucket.getObject(pieces.video1.name)).toEqual(pieces.video1.data)
  })

  it("makes the MP4 of a timeline's ranges: their segments one after another from 0, the init declaring their length", async () => {
    const { videoId } = await storeExport()
    const of = async (timeline: ReadonlyArray<readonly [number, number]>) => {
      const file = await exports.rangeMp4(videoId, timeline)
      if (file === undefined) return undefined
      expect(file.contentType).toBe("video/mp4")
      const bytes = await bytesOf(file)
      const firstFragment = boxes(bytes).find((box) => box.type === "moof")?.start ?? bytes.length
      return { init: declaredDurations(bytes), fragments: fragmentsOf(bytes.subarray(firstFragment)) }
    }
    // Segments: 0 → [0, 2) (video0 + mic0), 1 → [2, 3.5) (video1).
    expect(await of([[2.5, 3]])).toEqual({
      init: { mvhd: 1500, mehd: 1500 },
      fragments: [{ sequence: 1, track: 1, time: 0, data: "v1a" }],
    })
    // Later first: segment 1 then 0, each track going on where it ended.
    expect(
      await of([
        [2.2, 3],
        [0, 1],
      ]),
    ).toEqual({
      init: { mvhd: 3500, mehd: 3500 },
      fragments: [
        { sequence: 1, track: 1, time: 0, data: "v1a" },
        { sequence: 2, track: 1, time: 512, data: "v0a" },
        { sequence: 3, track: 1, time: 1024, data: "v0b" },
        { sequence: 4, track: 2, time: 0, data: "m0a" },
        { sequence: 5, track: 2, time: 1024, data: "m0b" },
      ],
    })
    // The whole video in order is video.mp4's fragments, under an init of its length.
    const whole = await of([[0, 3.5]])
    expect(whole?.fragments).toEqual(
      fragmentsOf((await bytesOf(await opened(videoId, "video.mp4"))).subarray(init("video+mic").length)),
    )
    expect(whole?.init).toEqual({ mvhd: 3500, mehd: 3500 })
    // Byte ranges, as any file.
    const ranged = await exports.rangeMp4(videoId, [[2.5, 3]], { start: 4, end: 11 })
    expect([ranged?.start, ranged?.end]).toEqual([4, 11])
    expect(await exports.rangeMp4(videoId, [[10, 20]])).toBeUndefined()
    expect(await exports.rangeMp4("m-NOSUCHEXPORT", [[0, 1]])).toBeUndefined()
  })

  it("serves HLS segments that are runs of the same parts, so init + segments is the MP4", async () => {
    const { videoId } = await storeExport()
    const parts = await Promise.all(
      ["init.mp4", "seg/0.m4s", "seg/1.m4s"].map(async (f) => bytesOf(await opened(videoId, f))),
    )
    expect(concat(parts)).toEqual(await bytesOf(await opened(videoId, "video.mp4")))
    expect((await opened(videoId, "seg/1.m4s")).contentType).toBe("video/iso.segment")
    expect(fragmentsOf(parts[2] as Uint8Array)).toEqual([{ sequence: 5, track: 1, time: 1024, data: "v1a" }])
  })

  it("serves each raw asset from its own init and parts, on track 1", async () => {
    const { videoId } = await storeExport()
    const mic = await opened(videoId, "raw/mic_default.m4a")
    expect(mic.contentType).toBe("audio/mp4")
    const bytes = await mic.bytes()
    expect(fragmentsOf(bytes.subarray(init("mic").length))).toEqual([
      { sequence: 1, track: 1, time: 0, data: "m0a" },
      { sequence: 2, track: 1, time: 1024, data: "m0b" },
    ])
    const display = await (await opened(videoId, "raw/display_1.mp4")).bytes()
    expect(fragmentsOf(display.subarray(init("display").length)).map((f) => [f.sequence, f.time])).toEqual([
      [1, 0],
      [2, 512],
      [3, 1024],
    ])
  })

  it("serves byte ranges across parts, clamps the end, and refuses a start past the end", async () => {
    const { videoId } = await storeExport()
    const whole = await bytesOf(await opened(videoId, "video.mp4"))
    for (const [start, end] of [
      [0, 0],
      [10, 60],
      [40, whole.length - 5],
      [whole.length - 1, whole.length - 1],
    ] as const) {
      const ranged = await opened(videoId, "video.mp4", { start, end })
      expect([ranged.size, ranged.start, ranged.end]).toEqual([whole.length, start, end])
      expect(await streamed(ranged)).toEqual(whole.subarray(start, end + 1))
    }
    const open = await opened(videoId, "video.mp4", { start: 100, end: whole.length + 1_000 })
    expect([open.start, open.end]).toEqual([100, whole.length - 1])
    expect(await bytesOf(open)).toEqual(whole.subarray(100))
    await expect(exports.open(videoId, "video.mp4", { start: whole.length })).rejects.toBeInstanceOf(
      RangeNotSatisfiable,
    )
    await expect(exports.open(videoId, "video.mp4", { start: 50, end: 10 })).rejects.toMatchObject({
      _tag: "RangeNotSatisfiable",
      size: whole.length,
    })
    const json = await opened(videoId, "export.json", { start: 0, end: 0 })
    expect(new TextDecoder().decode(await json.bytes())).toBe("{")
  })

  it("finds a raw asset by its id, with its export", async () => {
    const { videoId, metadata } = await storeExport()
    for (const expected of metadata.channels) {
      const found = await exports.asset(expected.asset_id)
      expect(found?.asset).toEqual(expected)
      expect(found?.metadata.video_id).toBe(videoId)
    }
    expect(await exports.asset(rawAssetId(videoId, "camera:x", "video"))).toBeUndefined()
    expect(await exports.asset(videoId)).toBeUndefined()
    expect(await exports.asset("rts-1")).toBeUndefined()
    expect(await exports.asset("a-../../x")).toBeUndefined()
  })

  it("gives an export stored before raw assets had ids the ids derived from its video id", async () => {
    const { videoId } = await storeExport({ withoutAssetIds: true })
    const channels = (await exports.get(videoId))?.channels ?? []
    expect(channels.map((c) => c.asset_id)).toEqual([
      rawAssetId(videoId, "display:1", "video"),
      rawAssetId(videoId, "mic:default", "audio"),
    ] as AssetId[])
  })

  it("answers nothing for an unknown export, file or id that is not an export's", async () => {
    const { videoId } = await storeExport()
    expect(await exports.get(newVideoId())).toBeUndefined()
    expect(await exports.files(newVideoId())).toBeUndefined()
    expect(await exports.open(newVideoId(), "video.mp4")).toBeUndefined()
    expect(await exports.get("../videos")).toBeUndefined()
    expect(await exports.open(videoId, "seg/99.m4s")).toBeUndefined()
    expect(await exports.open(videoId, "../manifest.json")).toBeUndefined()
    expect(await exports.open(videoId, "raw/camera_x.mp4")).toBeUndefined()
  })

  it("fails the body, not the answer, when a piece the manifest names is gone", async () => {
    const { videoId } = await storeExport({ missingPiece: true })
    const video = await opened(videoId, "video.mp4")
    await expect(video.bytes()).rejects.toThrow(/export piece pieces\/.*never-stored\.m4s is missing/)
  })

  it("reads a manifest or an asset index entry that does not decode as no export, and logs it", async () => {
    const logs: Array<string> = []
    const logged = await ExportStore.open(nc, { log: (message) => logs.push(message) })
    const { videoId, metadata } = await storeExport()
    const broken = newVideoId()
    await bucket.putJson(manifestName(broken), { v: 1, metadata: { ...metadata, video_id: "not-a-video" } })
    const asset = rawAssetId(broken, "display:1", "video")
    await bucket.putObject(assetIndexName(asset), new TextEncoder().encode("not json {"))
    expect(await logged.get(broken)).toBeUndefined()
    expect(await logged.open(broken, "video.mp4")).toBeUndefined()
    expect(await logged.asset(asset)).toBeUndefined()
    expect(logs.filter((line) => line.includes("does not decode"))).toHaveLength(3)
    // The good export next to them is served as before.
    expect(await logged.get(videoId)).toEqual(metadata)
  })

  it("stores a long manifest's parts in chunks, serves every file as the inline manifest does, and writes only new chunks", {
    timeout: 120_000,
  }, async () => {
    for (const piece of Object.values(pieces)) await bucket.putObject(piece.name, piece.data)
    // 2.5 chunks of the muxed video: video0 (2 moofs) and mic0 (2 moofs) in turn, one HLS segment each pair.
    const pairs = Math.ceil((MANIFEST_CHUNK_PARTS * 5) / 4)
    const longManifest = (videoId: VideoId, count: number): Manifest => {
      const parts = Array.from({ length: count }, (_, i) => [
        part("video0", { moofs: 2, track: 1, base: i * 1024, duration: 1024, seq: 1 + 4 * i }),
        part("mic0", { moofs: 2, track: 2, base: i * 2048, duration: 2048, seq: 3 + 4 * i }),
      ]).flat()
      const rawParts = Array.from({ length: count }, (_, i) =>
        part("video1", { moofs: 1, track: 1, base: i * 512, duration: 512, seq: 1 + i }),
      )
      const videoInit = { name: `videos/${videoId}/init.mp4`, bytes: init("long").length }
      return {
        v: 1,
        metadata: metadataOf(videoId),
        video: { file: "video.mp4", contentType: "video/mp4", init: videoInit, parts },
        segments: Array.from({ length: count }, (_, i) => ({ duration: 2, first: 2 * i, count: 2 })),
        raw: [{ file: "raw/display_1.mp4", contentType: "video/mp4", init: videoInit, parts: rawParts }],
      }
    }
    const inline = newVideoId()
    const chunked = newVideoId()
    await bucket.putObject(`videos/${inline}/init.mp4`, init("long"))
    await bucket.putObject(`videos/${chunked}/init.mp4`, init("long"))
    await bucket.putJson(manifestName(inline), longManifest(inline, pairs))
    const known = new Set<string>()
    const prefix = manifestChunkPrefix(sessionId)
    // The muxed video: 3 chunks (the last one partial); the raw asset: 2.
    expect(await bucket.putManifest(chunked, longManifest(chunked, pairs), prefix, known)).toBe(5)
    const stored = await bucket.getObject(manifestName(chunked))
    const head = JSON.parse(new TextDecoder().decode(stored))
    expect(head.video.parts).toBeUndefined()
    expect(head.video.chunks.map((c: { count: number }) => c.count)).toEqual([
      MANIFEST_CHUNK_PARTS,
      MANIFEST_CHUNK_PARTS,
      2 * pairs - 2 * MANIFEST_CHUNK_PARTS,
    ])
    // Files whose parts cross the chunks' edges (reading all of video.mp4 fetches ~640 pieces).
    const same = async (file: string, range?: { start: number; end: number }) => {
      const [a, b] = [await opened(chunked, file, range), await opened(inline, file, range)]
      expect(a.size).toBe(b.size)
      expect(await bytesOf(a)).toEqual(await bytesOf(b))
    }
    await same("init.mp4")
    await same("index.m3u8")
    for (const segment of [0, MANIFEST_CHUNK_PARTS / 2 - 1, MANIFEST_CHUNK_PARTS / 2, pairs - 1])
      await same(`seg/${segment}.m4s`)
    const pair = pieces.video0.data.length + pieces.mic0.data.length
    const edge = init("long").length + (MANIFEST_CHUNK_PARTS / 2) * pair
    await same("video.mp4", { start: edge - 100, end: edge + 100 })
    await same("video.mp4", { start: edge * 2 - 100, end: edge * 2 })
    const rawEdge = init("long").length + MANIFEST_CHUNK_PARTS * pieces.video1.data.length
    await same("raw/display_1.mp4", { start: rawEdge - 50, end: rawEdge + 50 })
    expect(await exports.files(chunked)).toEqual(await exports.files(inline))
    // Another export of the same session with a few more parts: only the chunks that differ are written.
    const longer = newVideoId()
    expect(await bucket.putManifest(longer, longManifest(longer, pairs + 3), prefix, known)).toBe(2)
    // Written again (a retried export): nothing but the head.
    expect(await bucket.putManifest(chunked, longManifest(chunked, pairs), prefix, known)).toBe(0)
  })

  it("reads a manifest whose chunk is missing as no export, and logs it", async () => {
    const logs: Array<string> = []
    const logged = await ExportStore.open(nc, { log: (message) => logs.push(message) })
    const videoId = newVideoId()
    await bucket.putJson(manifestName(videoId), {
      v: 1,
      metadata: metadataOf(videoId),
      video: {
        file: "video.mp4",
        contentType: "video/mp4",
        init: { name: `videos/${videoId}/init.mp4`, bytes: 10 },
        chunks: [{ name: `${manifestChunkPrefix(sessionId)}/never-stored.json`, count: 3 }],
      },
      segments: [],
      raw: [],
    })
    expect(await logged.get(videoId)).toBeUndefined()
    expect(logs.some((line) => line.includes("chunk") && line.includes(videoId))).toBe(true)
  })
})
