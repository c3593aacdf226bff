import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  type CaptureSession,
  type RawAssetView,
  SEGMENT_CONTENT_TYPE,
  SEGMENT_FINAL,
  SegmentHeaders,
  type VideoView,
} from "@capture/protocol"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killIfRunning } from "./cli.js"
import { type CaptureServer, startCaptureServer } from "./endToEnd.js"

// Exports over HTTP, as `capture serve` (gateway and muxer in one process) makes and serves them:
// each rtstream's raw asset id, the raw assets as video and audio objects with download URLs,
// and the refusals for ids of the wrong kind or collection.

let nats: NatsServerHandle
let server: CaptureServer
let dir: string
/** One-second MPEG-TS segments: a display's video and a mic's audio, three seconds each. */
let media: Record<"display:1" | "mic:default", Array<Uint8Array>>

const ffmpeg = process.env.FFMPEG_PATH ?? "ffmpeg"
const segmentsOf = (name: string, input: ReadonlyArray<string>, codec: ReadonlyArray<string>) => {
  const out = join(dir, name)
  mkdirSync(out, { recursive: true })
  execFileSync(ffmpeg, [
    ...["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", ...input, ...codec],
    ...["-f", "segment", "-segment_time", "1", "-segment_format", "mpegts", join(out, "%03d.ts")],
  ])
  return readdirSync(out)
    .sort()
    .map((file) => new Uint8Array(readFileSync(join(out, file))))
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "capture-exports-"))
  media = {
    "display:1": segmentsOf(
      "display",
      ["testsrc2=size=160x120:rate=10:duration=3"],
      ["-c:v", "libx264", "-g", "10", "-pix_fmt", "yuv420p"],
    ),
    "mic:default": segmentsOf("mic", ["sine=frequency=440:sample_rate=48000:duration=3"], ["-c:a", "aac"]),
  }
  nats = await startNatsServer()
  server = await startCaptureServer(nats.url)
}, 120_000)
afterAll(async () => {
  await killIfRunning(server?.process)
  await nats?.stop()
  rmSync(dir, { recursive: true, force: true })
})

/** An API call with the server's key, or without any key when `token` is null. */
const request = async (
  method: "GET" | "POST",
  path: string,
  options: { readonly body?: object; readonly token?: null } = {},
) => {
  if (options.token !== null) return server.call(method, path, options.body)
  const response = await fetch(`${server.base}${path}`, { method })
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

const data = <A>(body: Record<string, unknown>) => body.data as A
const wall = 1_763_000_000_000

/** Records a session through the API as the recorder would: start, every segment, stop. */
const recordSession = async (): Promise<{ id: string; stopped: CaptureSession }> => {
  const created = await request("POST", "/collection/default/capture/session", {
    body: { end_user_id: "user-a" },
  })
  const id = data<CaptureSession>(created.body).id
  await request("POST", "/capture/session/start", {
    body: { session_id: id, channels: [{ channel_id: "display:1" }, { channel_id: "mic:default" }] },
  })
  for (const [channel, segments] of Object.entries(media)) {
    for (const [index, bytes] of segments.entries()) {
      const response = await fetch(
        `${server.base}/capture/session/${id}/channels/${encodeURIComponent(channel)}/segments/${index}`,
        {
          method: "PUT",
          headers: {
            [SegmentHeaders.token]: server.apiKey,
            "content-type": SEGMENT_CONTENT_TYPE,
            [SegmentHeaders.startMs]: String(wall + index * 1000),
            [SegmentHeaders.durationMs]: "1000",
            [SegmentHeaders.sha256]: createHash("sha256").update(bytes).digest("hex"),
            ...(index === segments.length - 1 ? { [SegmentHeaders.final]: SEGMENT_FINAL } : {}),
          },
          body: bytes,
        },
      )
      expect(response.status, `${channel} #${index}`).toBe(200)
    }
  }
  await request("POST", `/capture/session/${id}/stop`)
  // Every final segment is in: the session reactor finishes the stop without the stop timer. (The
  // view may still show `active` at first look: it is projected after the stop is answered.)
  await expect
    .poll(
      async () =>
        data<CaptureSession>((await request("GET", `/collection/default/capture/session/${id}`)).body).status,
      { timeout: 20_000 },
    )
    .toMatch(/^(stopped|exported)$/)
  const stopped = await request("GET", `/collection/default/capture/session/${id}`)
  return { id, stopped: data<CaptureSession>(stopped.body) }
}

const exportedSession = async (id: string): Promise<CaptureSession> => {
  for (let i = 0; i < 300; i++) {
    const got = await request("GET", `/collection/default/capture/session/${id}`)
    const session = data<CaptureSession>(got.body)
    if (session.status === "exported" && session.rtstreams.every((r) => r.exported_asset_id !== null))
      return session
    if (session.status === "failed") throw new Error(`export failed: ${JSON.stringify(session.error)}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`session ${id} was not exported`)
}

describe("exports over HTTP", () => {
  let session: CaptureSession

  it("shows the export running from the stop, then each rtstream's raw asset id", async () => {
    const { id, stopped } = await recordSession()
    // Seen between the stop and the export (a fast export may already be done by the first look).
    if (stopped.status !== "exported") {
      expect(stopped).toMatchObject({
        status: "stopped",
        export_status: "exporting",
        exported_video_id: null,
      })
    }
    session = await exportedSession(id)
    expect(session).toMatchObject({ export_status: "exported" })
    // An rtstream's name is its capture channel; channel_id is the category the SDK matches.
    expect(session.rtstreams.map((r) => [r.name, r.channel_id])).toEqual([
      ["display:1", "screen"],
      ["mic:default", "mic"],
    ])
    const byChannel = Object.fromEntries(session.rtstreams.map((r) => [r.name, r.exported_asset_id]))
    expect(byChannel["display:1"]).toMatch(/^m-/)
    expect(byChannel["mic:default"]).toMatch(/^a-/)
    expect(byChannel["display:1"]).not.toBe(session.exported_video_id)
  }, 60_000)

  it("serves a display's raw asset at /video/{m-…} and a mic's at /audio/{a-…}, with download URLs", async () => {
    const videoId = session.exported_video_id as string
    const assetOf = (channel: string) =>
      session.rtstreams.find((r) => r.name === channel)?.exported_asset_id as string
    const cases = [
      { kind: "video", channel: "display:1", file: "raw/display_1.mp4", contentType: "video/mp4" },
      { kind: "audio", channel: "mic:default", file: "raw/mic_default.m4a", contentType: "audio/mp4" },
    ] as const
    for (const { kind, channel, file, contentType } of cases) {
      const assetId = assetOf(channel)
      const got = await request("GET", `/collection/default/${kind}/${assetId}`)
      expect(got.status).toBe(200)
      const view = data<RawAssetView>(got.body)
      expect(view).toMatchObject({
        id: assetId,
        collection_id: "default",
        session_id: session.id,
        video_id: videoId,
        channel_id: channel,
        type: kind,
        download_url: `${server.base}/media/${videoId}/${file}`,
        metadata: { asset_id: assetId, channel_id: channel, file, content_type: contentType },
      })
      expect(view.length).toBeGreaterThan(2.5)
      const download = await fetch(view.download_url)
      expect(download.status).toBe(200)
      expect(download.headers.get("content-type")).toBe(contentType)
      expect((await download.arrayBuffer()).byteLength).toBe(view.metadata.bytes)
    }

    // The muxed video is still the video object, listing the same asset ids in its metadata.
    const video = await request("GET", `/collection/default/video/${videoId}`)
    const videoView = data<VideoView>(video.body)
    expect(videoView).toMatchObject({
      id: videoId,
      download_url: `${server.base}/media/${videoId}/video.mp4`,
    })
    expect(Object.fromEntries(videoView.metadata.channels.map((c) => [c.channel_id, c.asset_id]))).toEqual(
      Object.fromEntries(session.rtstreams.map((r) => [r.name, r.exported_asset_id])),
    )
  })

  it("answers 404 not_found for unknown ids, the wrong kind or another collection, and 401 without a key", async () => {
    const display = session.rtstreams.find((r) => r.name === "display:1")?.exported_asset_id as string
    const mic = session.rtstreams.find((r) => r.name === "mic:default")?.exported_asset_id as string
    const notFound = async (path: string, field: string) =>
      expect(await request("GET", path)).toMatchObject({
        status: 404,
        body: { success: false, error_code: "not_found", field },
      })
    await notFound(`/collection/default/audio/a-0000000000UNKNOWN00000000`, "audio_id")
    await notFound(`/collection/default/video/m-0000000000UNKNOWN00000000`, "video_id")
    await notFound(`/collection/default/video/${mic}`, "video_id")
    await notFound(`/collection/default/audio/${display}`, "audio_id")
    await notFound(`/collection/default/audio/${session.exported_video_id}`, "audio_id")
    await notFound(`/collection/c-other/audio/${mic}`, "audio_id")
    expect(await request("GET", `/collection/default/audio/${mic}`, { token: null })).toMatchObject({
      status: 401,
      body: { error_code: "unauthorized" },
    })
  })
})
