/**
 * ffmpeg (a publisher nobody here wrote) → RTMP → `capture serve` (gateway + muxer) → the
 * exported MP4. A `source: "rtmp"` session is pushed a test pattern with a tone; its live HLS
 * plays while it is pushed (ffprobe on the signed URL); the publisher is killed mid-way and
 * pushes again; once it leaves for good the grace period stops the session, which exports one
 * video with both streams as long as the two pushes and the hole between them.
 */
import type { ChildProcess } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { MediaStore } from "@capture/media"
import { getFreePort, type NatsServerHandle, publishRtmp, startNatsServer } from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killIfRunning } from "./cli.js"
import { type CaptureServer, pollUntil, sleep, startCaptureServer } from "./endToEnd.js"
import { probe } from "./media.js"
import { expectPushedExport } from "./pushedExport.js"

const ffmpeg = process.env.FFMPEG_PATH ?? "ffmpeg"
const SECOND_PUSH_S = 6

let nats: NatsServerHandle
let nc: NatsConnection
let server: CaptureServer
let rtmpPort: number
let work: string
const children = new Set<ChildProcess>()

beforeAll(async () => {
  nats = await startNatsServer()
  nc = await connect({ servers: nats.url, maxReconnectAttempts: -1 })
  rtmpPort = await getFreePort()
  server = await startCaptureServer(nats.url, {
    env: { CAPTURE_RTMP_PORT: String(rtmpPort), CAPTURE_RTMP_GRACE_MS: "3000" },
  })
  work = await mkdtemp(join(tmpdir(), "capture-rtmp-e2e-"))
}, 120_000)
afterAll(async () => {
  for (const child of children) child.kill("SIGKILL")
  await killIfRunning(server?.process)
  await nc?.close()
  await nats?.stop()
  if (work !== undefined) await rm(work, { recursive: true, force: true })
})

/** A publisher pushing 640x360 at 25 fps and a tone, `seconds` long or until killed. */
const push = (url: string, seconds?: number) =>
  publishRtmp(ffmpeg, url, { size: "640x360", rate: 25, seconds }, children)

describe("RTMP publisher → capture serve → exported (real processes)", () => {
  it("records a pushed stream across a reconnect, plays it live over HLS and exports both streams", async () => {
    const created = await server.data("POST", "/collection/default/capture/session", {
      end_user_id: "obs-user",
    })
    const session = created.id as string
    const started = await server.data("POST", "/capture/session/start", {
      session_id: session,
      source: "rtmp",
    })
    const rtmp = started.rtmp as { url: string; stream_key: string }
    expect(rtmp.url).toBe(`rtmp://127.0.0.1:${rtmpPort}/live/${rtmp.stream_key}`)
    const media = await MediaStore.open(nc)
    const ofChannel = async (channel: string) =>
      (await media.list(session)).filter((r) => r.channel_id === channel).sort((a, b) => a.index - b.index)

    const first = push(rtmp.url)
    await pollUntil(
      "two video segments",
      () => ofChannel("camera:rtmp"),
      (records) => records.length >= 2,
    )
    // Live HLS of the pushed video, while it is pushed.
    const live = await probe(started.hls_url as string)
    expect(live.streams.map((s) => s.codec_type)).toContain("video")
    expect((await server.data("GET", `/collection/default/capture/session/${session}`)).status).toBe("active")

    first.child.kill("SIGKILL")
    await first.exited
    await sleep(500)
    const second = push(rtmp.url, SECOND_PUSH_S)
    expect((await second.exited).code).toBe(0)

    const { probed, recordedMs, seconds } = await expectPushedExport({
      server,
      media,
      session,
      channels: ["camera:rtmp", "mic:rtmp"],
      work,
    })
    expect(probed.streams.map((s) => s.codec_type).sort()).toEqual(["audio", "video"])
    // As long as what was recorded: both pushes and the hole between them (filled).
    expect(seconds).toBeGreaterThan(SECOND_PUSH_S + 3)
    expect(Math.abs(seconds - recordedMs / 1000)).toBeLessThan(2.5)
  }, 240_000)
})
