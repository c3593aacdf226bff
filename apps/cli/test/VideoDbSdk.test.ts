/**
 * VideoDB's own Node SDK (`videodb` 0.2.0, unchanged) against a real `capture serve` (gateway and
 * muxer) and NATS: a session recorded through the ingest route as the recorder would, then the
 * SDK's capture-session view of it, `session.getRTStream(category)`, the collection's rtstream
 * calls, stop/start, `generateStream` and `export` (which polls the server's `output_url`).
 */
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SEGMENT_CONTENT_TYPE, SEGMENT_FINAL, SegmentHeaders } from "@capture/protocol"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { connect, type RTStream } from "videodb"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killIfRunning } from "./cli.js"
import { type CaptureServer, startCaptureServer } from "./endToEnd.js"

const CHANNELS = ["display:1", "mic:default", "system_audio:default"] as const
type CaptureChannel = (typeof CHANNELS)[number]

let nats: NatsServerHandle
let server: CaptureServer
let dir: string
/** One-second MPEG-TS segments, three of each channel. */
let media: Record<CaptureChannel, Array<Uint8Array>>

const ffmpeg = process.env.FFMPEG_PATH ?? "ffmpeg"
const wall = 1_763_000_000_000

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
  dir = mkdtempSync(join(tmpdir(), "capture-sdk-"))
  media = {
    "display:1": segmentsOf(
      "display",
      ["testsrc2=size=160x120:rate=10:duration=3"],
      ["-c:v", "libx264", "-g", "10", "-pix_fmt", "yuv420p"],
    ),
    "mic:default": segmentsOf("mic", ["sine=frequency=440:sample_rate=48000:duration=3"], ["-c:a", "aac"]),
    "system_audio:default": segmentsOf(
      "system",
      ["sine=frequency=660:sample_rate=48000:duration=3"],
      ["-c:a", "aac"],
    ),
  }
  nats = await startNatsServer()
  server = await startCaptureServer(nats.url)
}, 120_000)
afterAll(async () => {
  await killIfRunning(server?.process)
  await nats?.stop()
  rmSync(dir, { recursive: true, force: true })
})

/** Uploads segments `from`..`to` of a channel as the recorder does (the last one final when asked). */
const upload = async (
  sessionId: string,
  channel: CaptureChannel,
  from: number,
  to: number,
  final: boolean,
) => {
  for (let index = from; index <= to; index++) {
    const bytes = media[channel][index] as Uint8Array
    const response = await fetch(
      `${server.base}/capture/session/${sessionId}/channels/${encodeURIComponent(channel)}/segments/${index}`,
      {
        method: "PUT",
        headers: {
          [SegmentHeaders.token]: server.apiKey,
          "content-type": SEGMENT_CONTENT_TYPE,
          [SegmentHeaders.startMs]: String(wall + index * 1000),
          [SegmentHeaders.durationMs]: "1000",
          [SegmentHeaders.sha256]: createHash("sha256").update(bytes).digest("hex"),
          ...(final && index === to ? { [SegmentHeaders.final]: SEGMENT_FINAL } : {}),
        },
        body: bytes,
      },
    )
    expect(response.status, `${channel} #${index}`).toBe(200)
  }
}

describe("VideoDB's Node SDK", () => {
  it("finds a capture session's rtstreams by category, reads, stops, starts, plays and exports them", async () => {
    const conn = connect({ apiKey: server.apiKey, baseUrl: server.base })
    const coll = await conn.getCollection()
    const created = await conn.createCaptureSession({ endUserId: "sdk-user" })
    expect(created.id).toMatch(/^cap-/)
    await server.data("POST", "/capture/session/start", {
      session_id: created.id,
      channels: CHANNELS.map((channel_id) => ({ channel_id })),
    })
    for (const channel of CHANNELS) await upload(created.id, channel, 0, 1, false)

    // The SDK builds RTStreams from the session view (the read model follows within moments).
    let session = await conn.getCaptureSession(created.id)
    for (let i = 0; i < 100 && session.rtstreams.length < CHANNELS.length; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      await session.refresh()
    }
    expect(session.status).toBe("active")
    const [screen] = session.getRTStream("screen")
    const [mic] = session.getRTStream("mic")
    const [system] = session.getRTStream("system_audio")
    expect(session.getRTStream("display:1")).toEqual([])
    for (const [rtstream, category, mediaType] of [
      [screen, "screen", "video"],
      [mic, "mic", "audio"],
      [system, "system_audio", "audio"],
    ] as const) {
      expect(rtstream?.id).toMatch(/^rts-/)
      expect(rtstream).toMatchObject({
        channelId: category,
        name: category,
        collectionId: "default",
        status: "connected",
        mediaTypes: [mediaType],
      })
      expect(rtstream?.createdAt).toEqual(expect.any(String))
    }

    // The collection's calls: one rtstream by id (its `name` the capture channel), and the list.
    const byId = await coll.getRTStream(mic?.id ?? "")
    expect(byId).toMatchObject({ id: mic?.id, name: "mic:default", channelId: "mic", status: "connected" })
    const listed = await coll.listRTStreams({ limit: 100, ordering: "name" })
    expect(listed.filter((r) => r.id.startsWith(`rts-${created.id.slice(4)}-`)).map((r) => r.name)).toEqual([
      "display:1",
      "mic:default",
      "system_audio:default",
    ])

    // stop() and start(): the server's status follows.
    await (byId as RTStream).stop()
    expect((await coll.getRTStream(mic?.id ?? "")).status).toBe("stopped")
    expect((await coll.listRTStreams({ status: "stopped", name: "mic" })).map((r) => r.id)).toContain(mic?.id)
    await (byId as RTStream).start()
    expect((await coll.getRTStream(mic?.id ?? "")).status).toBe("connected")

    // generateStream(start, end) in Unix seconds: a playlist of the segments of that range.
    const url = await (screen as RTStream).generateStream(wall / 1000 + 0.5, wall / 1000 + 1.5)
    expect(url).toMatch(/index\.m3u8\?exp=/)
    const playlist = await (await fetch(url ?? "")).text()
    expect(playlist.split("\n").filter((line) => /^\d+\.ts/.test(line))).toHaveLength(2)

    // An rtstream is exported once its session stopped; the SDK polls until the export is made.
    await expect((screen as RTStream).export()).rejects.toThrow()
    for (const channel of CHANNELS) await upload(created.id, channel, 2, 2, true)
    await server.data("POST", `/capture/session/${created.id}/stop`)
    const exported = await (mic as RTStream).export("the mic")
    expect(exported).toMatchObject({ name: "the mic", videoId: expect.stringMatching(/^a-/) })
    expect(exported.duration).toBeGreaterThan(2.5)
    const file = await fetch(exported.streamUrl ?? "")
    expect(file.status).toBe(200)
    expect(file.headers.get("content-type")).toBe("audio/mp4")
    expect((await fetch(exported.playerUrl ?? "")).status).toBe(200)
    // Idempotent: the same asset again, without waiting; it is the rtstream's exported_asset_id.
    const again = await (mic as RTStream).export()
    expect(again).toMatchObject({ videoId: exported.videoId, name: "mic:default - Recording" })
    const display = await (screen as RTStream).export()
    expect(display.videoId).toMatch(/^m-/)
    session = await conn.getCaptureSession(created.id)
    const view = await server.data("GET", `/collection/default/capture/session/${created.id}`)
    const assets = (view.rtstreams as Array<{ name: string; exported_asset_id: string }>).map((r) => [
      r.name,
      r.exported_asset_id,
    ])
    expect(assets).toEqual(
      expect.arrayContaining([
        ["display:1", display.videoId],
        ["mic:default", exported.videoId],
      ]),
    )
    expect(session.getRTStream("mic").map((r) => r.status)).toEqual(["stopped"])
  }, 180_000)
})
