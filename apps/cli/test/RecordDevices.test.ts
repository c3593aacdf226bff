import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { MediaStore } from "@capture/media"
import { type ChannelId, rtstreamCategoryOf } from "@capture/protocol"
import {
  type LinuxDesktop,
  type NatsServerHandle,
  startLinuxDesktop,
  startNatsServer,
} from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type CliProcess, killIfRunning, startCli } from "./cli.js"
import {
  type CaptureServer,
  listenOnWebSocket,
  pollUntil,
  type SocketListener,
  startCaptureServer,
  startWebhookReceiver,
  type WebhookReceiver,
} from "./endToEnd.js"
import { averageColour, decodeSegment, meanVolume, probe } from "./media.js"

// Real devices end to end: a private desktop (Xvfb screen painted red, PulseAudio with a virtual
// microphone and a null sink as the speakers, espeak-ng talking into both) recorded by `capture
// record` with no --synthetic, against `capture serve`, through to the exported video. Needs the
// tools `scripts/bootstrap.sh --test` installs; without them this suite fails and says which.
const CHANNELS = ["display:1", "mic:default", "system_audio:default"]
const RECORD_SECONDS = 6
const SEGMENT_MS = 2_000

let desktop: LinuxDesktop
let nats: NatsServerHandle
let nc: NatsConnection
let server: CaptureServer
let hooks: WebhookReceiver
let socket: SocketListener | undefined
let recorder: CliProcess | undefined
let work: string

beforeAll(async () => {
  desktop = await startLinuxDesktop()
  nats = await startNatsServer()
  await desktop.speak(
    "micsink",
    "This is the microphone speaking. One two three four five six seven eight nine ten.",
  )
  await desktop.speak(
    "speaker",
    "And this is the system audio, playing through the speakers of the computer.",
  )
  nc = await connect({ servers: nats.url, maxReconnectAttempts: -1 })
  server = await startCaptureServer(nats.url)
  hooks = await startWebhookReceiver(server.webhookSecret)
  work = await mkdtemp(join(tmpdir(), "capture-devices-e2e-"))
})
afterAll(async () => {
  socket?.close()
  await killIfRunning(recorder)
  await hooks?.close()
  await killIfRunning(server?.process)
  await nc?.close()
  await nats?.stop()
  await desktop?.stop()
  if (work !== undefined) await rm(work, { recursive: true, force: true })
})

/** The desktop's environment as strings, for the recorder child (DISPLAY, PULSE_SERVER, …). */
const desktopEnv = (): Record<string, string> =>
  Object.fromEntries(
    Object.entries(desktop.env).filter((entry): entry is [string, string] => entry[1] !== undefined),
  )

describe("capture record from a real Linux desktop against capture serve (real processes)", () => {
  it("stores every segment decodable and as long as the recording, and exports the desktop", async () => {
    const listener = await listenOnWebSocket(server)
    socket = listener
    const session = (
      await server.data("POST", "/collection/default/capture/session", {
        end_user_id: "user-devices",
        callback_url: hooks.url,
        ws_connection_id: listener.connectionId,
      })
    ).id as string
    const token = (await server.data("POST", "/capture/session/token", { user_id: "user-devices" }))
      .token as string

    // No --channels: the default display, microphone and system audio of this desktop.
    const spawnedAt = Date.now()
    recorder = startCli(
      [
        ...["record", "--server", server.base, "--token", token, "--session", session],
        ...["--duration", `${RECORD_SECONDS}s`, "--spool", join(work, "spool")],
      ],
      desktopEnv(),
    )
    await recorder.waitFor(new RegExp(`recording ${session}: `), 60_000)
    const recordingAt = Date.now()
    await recorder.waitFor(/stopping \(duration\)/, 60_000)
    const stoppingAt = Date.now()
    const exit = await recorder.exited
    expect(exit.code, recorder.output()).toBe(0)
    expect(recorder.output()).toContain(`recording ${session}: ${CHANNELS.join(", ")}`)

    // Every stored segment decodes; per channel, indexes 0…n-1 (the last final), and the segments
    // last as long as the channel recorded, within one segment, by their records and decoded:
    // from its first sample (the device's clock, taken while the recorder was starting)
    // until the recorder said it was stopping.
    const media = await MediaStore.open(nc)
    const records = await media.list(session)
    expect([...new Set(records.map((r) => r.channel_id))].sort()).toEqual([...CHANNELS].sort())
    const firstSamples = CHANNELS.map(
      (channel) => records.find((r) => r.channel_id === channel)?.start_ms ?? 0,
    )
    for (const [position, channel] of CHANNELS.entries()) {
      const own = records.filter((r) => r.channel_id === channel)
      const firstSample = firstSamples[position] ?? 0
      expect(firstSample, channel).toBeGreaterThanOrEqual(spawnedAt)
      expect(firstSample, channel).toBeLessThanOrEqual(recordingAt)
      const recordedMs = stoppingAt - firstSample
      expect(
        own.map((r) => r.index),
        channel,
      ).toEqual(own.map((_, i) => i))
      expect(
        own.filter((r) => r.final).map((r) => r.index),
        channel,
      ).toEqual([own.length - 1])
      const spans = await Promise.all(
        own.map(async (r) => {
          const bytes = await media.read(session, channel, r.index)
          if (bytes === undefined) throw new Error(`${channel} #${r.index} is not stored`)
          const decoded = await decodeSegment(bytes)
          expect(decoded.errors, `${channel} #${r.index}`).toBe("")
          return decoded.seconds
        }),
      )
      const recordedTotal = own.reduce((sum, r) => sum + r.duration_ms, 0)
      const decodedTotal = spans.reduce((sum, seconds) => sum + seconds * 1000, 0)
      const where = `${channel}: recorded ${recordedMs} ms, records ${recordedTotal} ms, decoded ${Math.round(decodedTotal)} ms`
      expect(Math.abs(recordedTotal - recordedMs), where).toBeLessThanOrEqual(SEGMENT_MS)
      expect(Math.abs(decodedTotal - recordedMs), where).toBeLessThanOrEqual(SEGMENT_MS)
    }

    // Stopped, then exported: the signed webhook and the WebSocket event.
    const exported = await pollUntil(
      "capture_session.exported by webhook and WebSocket",
      async () => ({
        hook: hooks.received.find(
          (h) => h.envelope.capture_session_id === session && h.envelope.event === "capture_session.exported",
        ),
        event: listener.events.find(
          (e) => e.capture_session_id === session && e.event === "capture_session.exported",
        ),
      }),
      (found) => found.hook !== undefined && found.event !== undefined,
      { timeoutMs: 60_000 },
    )
    const hook = exported.hook?.envelope
    if (hook?.event !== "capture_session.exported") throw new Error("no exported webhook")
    if (exported.event?.event !== "capture_session.exported") throw new Error("no exported WebSocket event")
    expect(exported.hook?.verified).toBe(true)
    expect(hook.data.video_channel_id).toBe("display:1")
    expect(exported.event.data.exported_video_id).toBe(hook.data.exported_video_id)
    // (The read model follows the events within moments.)
    const view = await pollUntil(
      "the session exported in the read model",
      () => server.data("GET", `/collection/default/capture/session/${session}`),
      (v) => v.status === "exported",
      { timeoutMs: 10_000 },
    )
    const rtstreams = view.rtstreams as ReadonlyArray<{
      name: string
      channel_id: string
      exported_asset_id: string | null
    }>
    expect(rtstreams.map((r) => r.name).sort()).toEqual([...CHANNELS].sort())
    for (const rtstream of rtstreams) {
      expect(rtstream.channel_id, rtstream.name).toBe(rtstreamCategoryOf(rtstream.name as ChannelId))
      expect(rtstream.exported_asset_id, rtstream.name).toEqual(expect.any(String))
    }
    const sessionHooks = hooks.received.filter((h) => h.envelope.capture_session_id === session)
    expect(sessionHooks.every((h) => h.verified)).toBe(true)
    expect(sessionHooks.map((h) => h.envelope.event)).toContain("capture_session.stopped")

    // The export: one video stream (the red screen) and one audio stream (the speech), as long as
    // the recording (from the first channel's first sample), within one segment.
    const recordedMs = stoppingAt - Math.min(...firstSamples)
    const video = (await server.data("GET", `/collection/default/video/${hook.data.exported_video_id}`)) as {
      length: number
      download_url: string
      metadata: { audio_channel_ids: ReadonlyArray<string> }
    }
    expect([...video.metadata.audio_channel_ids].sort()).toEqual(["mic:default", "system_audio:default"])
    const response = await fetch(video.download_url)
    expect(response.status).toBe(200)
    const file = join(work, "export.mp4")
    await writeFile(file, new Uint8Array(await response.arrayBuffer()))
    const [probed, colour, volume] = await Promise.all([probe(file), averageColour(file), meanVolume(file)])
    expect(probed.streams.map((s) => s.codec_type).sort()).toEqual(["audio", "video"])
    for (const stream of probed.streams) {
      expect(Math.abs(Number(stream.duration) * 1000 - recordedMs), stream.codec_type).toBeLessThanOrEqual(
        SEGMENT_MS,
      )
    }
    expect(probed.streams.find((s) => s.codec_type === "video")).toMatchObject({ width: 1280, height: 720 })
    // Red (BT.601: V≈240, U≈90) and not silent.
    expect(colour.v).toBeGreaterThan(200)
    expect(colour.u).toBeLessThan(110)
    expect(volume).toBeGreaterThan(-40)
  }, 180_000)
})
