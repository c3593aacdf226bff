import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { CaptureClient } from "@capture/recorder"
import { startSessionRuntime } from "@capture/session-actor"
import { getFreePort, LOOPBACK, type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { connect } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killIfRunning, type ServeProcess, startServe } from "./cli.js"
import { type CaptureServer, pollUntil, sleep, startCaptureServer } from "./endToEnd.js"
import { probe } from "./media.js"

// A recorder (in this process, synthetic sources, real ffmpeg) against `capture serve` (gateway,
// session actor and reactor, muxer): its pauses reach the session, a session paused on every
// channel is not taken for a silent one, and the export leaves the paused time out.
const SILENCE_MS = 3_000
const SMALL = { width: 320, height: 180, frameRate: 15 }

let nats: NatsServerHandle
let server: CaptureServer
let work: string
const clients: CaptureClient[] = []
const serves: ServeProcess[] = []

beforeAll(async () => {
  nats = await startNatsServer()
  server = await startCaptureServer(nats.url, { env: { CAPTURE_SILENCE_TIMEOUT_MS: String(SILENCE_MS) } })
  work = await mkdtemp(join(tmpdir(), "capture-pause-e2e-"))
})
afterAll(async () => {
  for (const client of clients) await client.shutdown()
  for (const serve of serves) await killIfRunning(serve)
  await killIfRunning(server?.process)
  await nats?.stop()
  if (work !== undefined) await rm(work, { recursive: true, force: true })
})

interface SessionView {
  readonly status: string
  readonly paused_channel_ids: ReadonlyArray<string>
  readonly stop_reason: string | null
  readonly exported_video_id: string | null
}

/** A session made with the API key of `base`, and a recorder holding its end user's client token. */
const recorderFor = async (
  call: (path: string, body: object) => Promise<Record<string, unknown>>,
  base: string,
) => {
  const user = `user-${Math.random().toString(36).slice(2, 8)}`
  const session = (await call("/collection/default/capture/session", { end_user_id: user })).id as string
  const token = (await call("/capture/session/token", { user_id: user })).token as string
  const client = new CaptureClient({
    clientToken: token,
    baseUrl: base,
    spoolDir: join(work, "spool"),
    synthetic: SMALL,
    upload: { baseDelayMs: 100, maxDelayMs: 1_000 },
  })
  clients.push(client)
  const channels = await client.listChannels()
  const display = channels.displays.default
  const mic = channels.mics.default
  if (display === undefined || mic === undefined) throw new Error("synthetic channels missing")
  return { session, client, display, mic }
}

const viewOf = async (session: string): Promise<SessionView> =>
  (await server.data("GET", `/collection/default/capture/session/${session}`)) as unknown as SessionView

const untilView = (session: string, what: string, done: (view: SessionView) => boolean, timeoutMs = 30_000) =>
  pollUntil(what, () => viewOf(session), done, { timeoutMs, intervalMs: 100 })

describe("pause and resume, recorder → capture serve (real processes)", () => {
  it("shows paused channels in the session, does not take a session paused on every channel for a silent one, and exports without the paused time", async () => {
    const { session, client, display, mic } = await recorderFor(
      (path, body) => server.data("POST", path, body),
      server.base,
    )
    await client.startCaptureSession({ sessionId: session, channels: [display, mic] })
    await untilView(session, "the session active", (v) => v.status === "active")
    await sleep(2_500)

    await mic.pause()
    await untilView(session, "mic paused", (v) => v.paused_channel_ids.join() === "mic:default")
    await mic.resume()
    await untilView(session, "mic resumed", (v) => v.paused_channel_ids.length === 0)
    await sleep(2_500)

    // For contrast, a second session whose recorder goes away without pausing: silent.
    const silent = await recorderFor((path, body) => server.data("POST", path, body), server.base)
    await silent.client.startCaptureSession({
      sessionId: silent.session,
      channels: [silent.display, silent.mic],
    })
    await untilView(silent.session, "the silent session active", (v) => v.status === "active")
    await silent.client.shutdown()

    // Every channel paused for three silence timeouts: no segment arrives, the session stays.
    await Promise.all([display.pause(), mic.pause()])
    const pausedAt = Date.now()
    await untilView(session, "every channel paused", (v) => v.paused_channel_ids.length === 2)
    await sleep(3 * SILENCE_MS)
    // serve's reactor judges both on their durable silence timers: the silent one is stopped.
    const stopped = await untilView(
      silent.session,
      "the silent session stopped",
      (v) => v.stop_reason !== null,
    )
    expect(stopped.stop_reason).toBe("recorder_silent")
    const during = await viewOf(session)
    expect(during.status).toBe("active")
    expect(during.stop_reason).toBeNull()
    expect([...during.paused_channel_ids].sort()).toEqual(["display:1", "mic:default"])
    await Promise.all([display.resume(), mic.resume()])
    const pausedMs = Date.now() - pausedAt
    await sleep(3_000)
    await client.stopCapture()

    const exported = await untilView(session, "the export", (v) => v.status === "exported", 120_000)
    expect(exported.stop_reason).toBe("requested")
    const video = (await server.data("GET", `/collection/default/video/${exported.exported_video_id}`)) as {
      length: number
      download_url: string
      metadata: {
        duration_ms: number
        paused_spans: ReadonlyArray<{ start_ms: number; end_ms: number | null }>
        paused_ms_removed: number
        channels: ReadonlyArray<{ channel_id: string; duration_ms: number }>
      }
    }
    const { metadata } = video
    // One span: while both were paused (the mic's pause alone is not one).
    expect(metadata.paused_spans).toHaveLength(1)
    const [span] = metadata.paused_spans
    const spanMs = (span?.end_ms ?? 0) - (span?.start_ms ?? 0)
    expect(spanMs).toBeGreaterThan(3 * SILENCE_MS)
    expect(spanMs).toBeLessThan(pausedMs + 1_000)
    expect(Math.abs(metadata.paused_ms_removed - spanMs)).toBeLessThan(200)
    // The display's raw asset keeps the whole timeline; the muxed video is that, less the pause.
    const raw = metadata.channels.find((c) => c.channel_id === "display:1")
    expect(
      Math.abs((raw?.duration_ms ?? 0) - metadata.paused_ms_removed - metadata.duration_ms),
    ).toBeLessThan(300)
    const file = join(work, `${exported.exported_video_id}.mp4`)
    await writeFile(file, new Uint8Array(await (await fetch(video.download_url)).arrayBuffer()))
    const seconds = Number((await probe(file)).format.duration)
    expect(Math.abs(seconds * 1000 - metadata.duration_ms)).toBeLessThan(300)
    expect(seconds).toBeGreaterThan(7)
  }, 240_000)
})

describe("pause reports across a server outage (real processes)", () => {
  const onEnd: Array<() => Promise<unknown>> = []
  afterAll(async () => {
    for (const client of clients) await client.shutdown()
    for (const serve of serves) await killIfRunning(serve)
    for (const end of onEnd.reverse()) await end()
  })

  it("delivers a pause and a resume made while the server is down once it is back, in order", async () => {
    // A NATS of its own: another serve's reactor (the suite's, with its short silence timeout)
    // would stop this session while its gateway is down, as any instance of a deployment may.
    const ownNats = await startNatsServer()
    onEnd.push(() => ownNats.stop())
    const ownNc = await connect({ servers: ownNats.url, maxReconnectAttempts: -1 })
    onEnd.push(() => ownNc.close())
    const ownRuntime = await startSessionRuntime(ownNc)
    onEnd.push(() => ownRuntime.stop())
    const port = await getFreePort()
    const base = `http://${LOOPBACK}:${port}`
    const apiKey = "sk-pause-outage-key-0123456789"
    const serveOn = async () => {
      // Silence is not what this is about: a slow restart must not stop the session.
      const serve = startServe(["--port", String(port)], {
        NATS_URL: ownNats.url,
        CAPTURE_API_KEY: apiKey,
        CAPTURE_SILENCE_TIMEOUT_MS: "600000",
      })
      serves.push(serve)
      await serve.waitFor(/\[capture\] ready/, 60_000)
      return serve
    }
    const post = async (path: string, body: object) => {
      const response = await fetch(`${base}${path}`, {
        method: "POST",
        headers: { "x-access-token": apiKey, "content-type": "application/json" },
        body: JSON.stringify(body),
      })
      const envelope = (await response.json()) as { data: Record<string, unknown> }
      expect(response.status, JSON.stringify(envelope)).toBe(200)
      return envelope.data
    }
    const first = await serveOn()
    const { session, client, display, mic } = await recorderFor(post, base)
    await client.startCaptureSession({ sessionId: session, channels: [display, mic] })
    await pollUntil(
      "the session active",
      async () => (await ownRuntime.host.load(session)).state.value,
      (status) => status === "active",
      { timeoutMs: 30_000, intervalMs: 100 },
    )

    first.child.kill("SIGKILL")
    await first.exited
    await mic.pause()
    await sleep(1_500)
    await mic.resume()
    await sleep(1_000)
    expect((await ownRuntime.host.load(session)).state.context.channel_pauses).toEqual([])

    await serveOn()
    const pauses = await pollUntil(
      "the pause and the resume on the server",
      async () => (await ownRuntime.host.load(session)).state.context.channel_pauses,
      (found) => found.length === 1 && found[0]?.to_ms !== null,
      { timeoutMs: 60_000, intervalMs: 200 },
    )
    const [pause] = pauses
    expect(pause?.channel_id).toBe("mic:default")
    // The resume came after the pause, as it happened (about 1.5 s of the segments' clock).
    const pausedFor = (pause?.to_ms ?? 0) - (pause?.from_ms ?? 0)
    expect(pausedFor).toBeGreaterThan(1_000)
    expect(pausedFor).toBeLessThan(5_000)
    await client.stopCapture()
    await pollUntil(
      "the session exported",
      async () => (await ownRuntime.host.load(session)).state.value,
      (status) => status === "exported",
      { timeoutMs: 120_000, intervalMs: 200 },
    )
  }, 240_000)
})
