import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { MediaStore } from "@capture/media"
import type { ExportMetadata, SessionId } from "@capture/protocol"
import { type SessionRuntime, startSessionRuntime } from "@capture/session-actor"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type CuttableProxy, startCuttableProxy } from "./chaos.js"
import { type CliProcess, killIfRunning, startCli } from "./cli.js"
import { type CaptureServer, pollUntil, sleep, startCaptureServer } from "./endToEnd.js"

// Late media after an automatic stop (issue 15): a recorder whose network is cut for longer than
// the silence timeout gets its session stopped (`recorder_silent`); once the network heals, what
// its spool holds from before the stop is still taken, and the automatic export, asked for when
// the grace period ends, holds every one of those segments once.

const SILENCE_TIMEOUT_MS = 5_000
const GRACE = "60s"
/** Late media is taken until this long before the grace period ends (at most half of it). */
const REQUEST_TIMEOUT_MS = 10_000
const CHANNELS = ["display:1", "mic:default"]

let nats: NatsServerHandle
let server: CaptureServer
let proxy: CuttableProxy
let nc: NatsConnection
let runtime: SessionRuntime
let media: MediaStore
let recorder: CliProcess | undefined
let dir: string

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "capture-late-media-"))
  nats = await startNatsServer()
  server = await startCaptureServer(nats.url, {
    env: {
      CAPTURE_SILENCE_TIMEOUT_MS: String(SILENCE_TIMEOUT_MS),
      CAPTURE_LATE_MEDIA_GRACE: GRACE,
      CAPTURE_HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      CAPTURE_HTTP_HEADERS_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
    },
  })
  const port = Number(new URL(server.base).port)
  proxy = await startCuttableProxy(() => [port])
  nc = await connect({ servers: nats.url })
  runtime = await startSessionRuntime(nc)
  media = await MediaStore.open(nc)
}, 120_000)

afterAll(async () => {
  await killIfRunning(recorder)
  await proxy?.close()
  await runtime?.stop()
  await nc?.close()
  await killIfRunning(server?.process)
  await nats?.stop()
  rmSync(dir, { recursive: true, force: true })
})

/** The start times of the segments a channel's spool still holds (sidecars), by index. */
const spooledStarts = (sessionSpool: string): Array<{ channel: string; index: number; start_ms: number }> => {
  const left: Array<{ channel: string; index: number; start_ms: number }> = []
  let channels: string[] = []
  try {
    channels = readdirSync(sessionSpool, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
  } catch {
    return left
  }
  for (const channel of channels) {
    for (const name of readdirSync(join(sessionSpool, channel))) {
      if (!/^\d+\.json$/.test(name)) continue
      const record = JSON.parse(readFileSync(join(sessionSpool, channel, name), "utf8")) as {
        index: number
        start_ms: number
      }
      left.push({ channel, index: record.index, start_ms: record.start_ms })
    }
  }
  return left
}

describe("late media after an automatic stop", () => {
  it("takes every segment recorded before a silence stop once the network heals, and exports them once", async () => {
    const created = await server.data("POST", "/collection/default/capture/session", {
      end_user_id: "late-user",
    })
    const sessionId = created.id as SessionId
    const token = (await server.data("POST", "/capture/session/token", { user_id: "late-user" }))
      .token as string
    const spool = join(dir, "spool")
    recorder = startCli([
      ...["record", "--server", proxy.url, "--token", token, "--session", sessionId],
      ...["--synthetic", "--channels", CHANNELS.join(","), "--duration", "120s", "--spool", spool],
    ])
    const state = async () => (await runtime.host.load(sessionId)).state
    await pollUntil(
      "a few segments stored",
      async () => (await media.list(sessionId)).length,
      (n) => n >= 4,
      { timeoutMs: 90_000 },
    )
    expect((await state()).value).toBe("active")

    // The network goes: the session stops for silence while the recorder keeps recording.
    proxy.cut()
    const cutAt = Date.now()
    const stopped = await pollUntil("stopped for silence", state, (s) => s.value === "stopped", {
      timeoutMs: 60_000,
      intervalMs: 250,
    })
    expect(stopped.context.stop_reason).toBe("recorder_silent")
    // The stop instant: when the silence stop was decided (its `SessionStopping`).
    let stopAt = Number.NaN
    for await (const { event } of runtime.events.read(sessionId)) {
      if (event.type === "SessionStopping") stopAt = Date.parse(event.time)
    }
    expect(stopAt).toBeGreaterThan(cutAt)
    const storedAtStop = (await media.list(sessionId)).length
    // Long enough after the stop for the recorder to hold segments recorded after it too.
    await sleep(5_000)
    proxy.restore()

    // The recorder uploads what it held from before the stop and ends on the first later segment.
    const exit = await Promise.race([recorder.exited, sleep(60_000).then(() => undefined)])
    expect(exit, recorder.output()).toBeDefined()

    const exported = await pollUntil(
      "exported",
      state,
      (s) => s.value === "exported" || s.value === "failed",
      { timeoutMs: 120_000, intervalMs: 500 },
    )
    expect(exported.value).toBe("exported")

    // Nothing recorded before the stop is left behind in the recorder's spool.
    const left = spooledStarts(join(spool, sessionId))
    expect(
      left.filter((segment) => segment.start_ms < stopAt),
      "segments recorded before the stop left in the spool",
    ).toEqual([])
    expect(Date.parse(exported.context.media_before ?? "")).toBe(stopAt)

    const records = await media.list(sessionId)
    let onStream = 0
    for await (const _ of media.readRecords(sessionId)) onStream++
    expect(onStream, "one record per segment").toBe(records.length)
    expect(records.length, "late segments were taken").toBeGreaterThan(storedAtStop)
    for (const channel of CHANNELS) {
      const indexes = records
        .filter((r) => r.channel_id === channel)
        .map((r) => r.index)
        .sort((a, b) => a - b)
      expect(indexes, channel).toEqual(indexes.map((_, i) => i))
    }
    const lateRecorded = records.filter((r) => r.start_ms + r.duration_ms > cutAt)
    expect(lateRecorded.length, "segments recorded during the cut were stored").toBeGreaterThan(0)

    // The export holds every stored segment of each channel.
    const videoId = exported.context.exports.find((e) => e.export_status === "exported")?.video_id
    expect(videoId).toBeTruthy()
    const response = await fetch(`${server.base}/media/${videoId}/export.json`, {
      headers: { "x-access-token": server.apiKey },
    })
    expect(response.status).toBe(200)
    const metadata = (await response.json()) as ExportMetadata
    for (const channel of CHANNELS) {
      const asset = metadata.channels.find((c) => c.channel_id === channel)
      expect(asset?.segments, channel).toBe(records.filter((r) => r.channel_id === channel).length)
    }
  }, 400_000)
})
