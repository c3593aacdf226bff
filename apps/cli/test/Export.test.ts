import { type ChildProcess, spawn } from "node:child_process"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { MediaStore } from "@capture/media"
import { type ChannelId, rtstreamCategoryOf } from "@capture/protocol"
import { AAC_PRIMING_MS } from "@capture/recorder"
import { foldSecond, type NatsServerHandle, startNatsServer, syncErrors } from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killIfRunning } from "./cli.js"
import {
  type CaptureServer,
  listenOnWebSocket,
  pollUntil,
  type SocketListener,
  startCaptureServer,
  startWebhookReceiver,
  type WebhookReceiver,
} from "./endToEnd.js"
import { beeps, flashes, probe, toneLevels } from "./media.js"

// Recorder (synthetic sources, its own process) → `capture serve` (gateway + muxer) → the
// `capture_session.exported` webhook and WebSocket event → the exported MP4, measured.
//
// Channels: two test patterns flashing white on each second of their own timeline (display:2 is
// resumed a quarter second after the start, which with ffmpeg's start-up puts its flashes about
// half a second out of phase with display:1's), two stored tones beeping on each second of theirs
// (ffmpeg's `sine`: the carrier, plus a 40 ms beep at `beepFactor` times it) and a `store: false`
// microphone at a third frequency that must not reach the export.
const RECORDER = fileURLToPath(new URL("./fixtures/syntheticRecorder.mjs", import.meta.url))
const RECORD_MS = 10_000
const STORED_TONES = {
  "mic:default": { hz: 440, beepHz: 440 * 4 },
  "system_audio:default": { hz: 660, beepHz: 660 * 3 },
}
const UNSTORED_HZ = 1000
const CHANNELS = [
  { id: "display:1", type: "video", primary: true },
  { id: "display:2", type: "video", startDelayMs: 250 },
  { id: "mic:default", type: "audio", frequency: 440, beepFactor: 4 },
  { id: "system_audio:default", type: "audio", frequency: 660, beepFactor: 3 },
  { id: "mic:aux", type: "audio", frequency: UNSTORED_HZ, beepFactor: 2, store: false },
]
const STORED = ["display:1", "display:2", "mic:default", "system_audio:default"]

let nats: NatsServerHandle
let nc: NatsConnection
let server: CaptureServer
let hooks: WebhookReceiver
let socket: SocketListener | undefined
let work: string
const children: ChildProcess[] = []

beforeAll(async () => {
  nats = await startNatsServer()
  nc = await connect({ servers: nats.url, maxReconnectAttempts: -1 })
  server = await startCaptureServer(nats.url)
  hooks = await startWebhookReceiver(server.webhookSecret)
  work = await mkdtemp(join(tmpdir(), "capture-export-e2e-"))
})
afterAll(async () => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  socket?.close()
  await hooks?.close()
  await killIfRunning(server?.process)
  await nc?.close()
  await nats?.stop()
  if (work !== undefined) await rm(work, { recursive: true, force: true })
})

/** Runs the synthetic recorder to completion; resolves with its output. */
const record = (options: object): Promise<{ code: number | null; output: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RECORDER, JSON.stringify(options)], {
      stdio: ["ignore", "pipe", "pipe"],
    })
    children.push(child)
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString()
    })
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString()
    })
    child.once("error", reject)
    child.once("close", (code) => resolve({ code, output }))
  })

interface VideoObject {
  readonly id: string
  readonly length: number
  readonly download_url: string
  readonly stream_url: string
  readonly metadata: {
    readonly video_channel_id: string | null
    readonly start_ms: number
    readonly audio_channel_ids: ReadonlyArray<string>
    readonly channels: ReadonlyArray<{
      readonly channel_id: string
      readonly type: string
      readonly file: string
    }>
    readonly gaps: ReadonlyArray<unknown>
  }
}

/** The video object of an export, and its MP4 downloaded to `work`. */
const download = async (videoId: string): Promise<{ video: VideoObject; file: string }> => {
  const video = (await server.data("GET", `/collection/default/video/${videoId}`)) as unknown as VideoObject
  expect(video.id).toBe(videoId)
  const response = await fetch(video.download_url)
  expect(response.status).toBe(200)
  expect(response.headers.get("content-type")).toBe("video/mp4")
  const file = join(work, `${videoId}.mp4`)
  await writeFile(file, new Uint8Array(await response.arrayBuffer()))
  return { video, file }
}

/** Checks an exported MP4: streams, durations, the mix, and A/V sync at its start and end. */
const checkExport = async (
  file: string,
  video: VideoObject,
  starts: ReadonlyMap<string, number>,
  videoChannelId: string,
) => {
  const [probed, levels, flashTimes, ...beepTimes] = await Promise.all([
    probe(file),
    toneLevels(file, [STORED_TONES["mic:default"].hz, STORED_TONES["system_audio:default"].hz, UNSTORED_HZ]),
    flashes(file),
    ...Object.values(STORED_TONES).map(({ beepHz }) => beeps(file, beepHz)),
  ])

  // One video and one audio stream, both as long as the recording (within a segment).
  const types = probed.streams.map((stream) => stream.codec_type).sort()
  expect(types).toEqual(["audio", "video"])
  const seconds = RECORD_MS / 1000
  for (const stream of probed.streams) {
    expect(Number(stream.duration), `${stream.codec_type} duration`).toBeGreaterThan(seconds - 2.5)
    expect(Number(stream.duration), `${stream.codec_type} duration`).toBeLessThan(seconds + 2.5)
  }
  expect(Math.abs(Number(probed.format.duration) - video.length)).toBeLessThan(0.5)

  // Every stored tone is in the mix; the store: false one is not (below the stored ones by far).
  const stored = Object.values(STORED_TONES).map(({ hz }) => levels[hz] ?? Number.NEGATIVE_INFINITY)
  for (const level of stored) expect(level, JSON.stringify(levels)).toBeGreaterThan(-30)
  expect(levels[UNSTORED_HZ], JSON.stringify(levels)).toBeLessThan(Math.min(...stored) - 40)

  // Flashes come every second of the display's timeline, beeps every second of each tone's: in
  // the export, a beep follows a flash by the difference of their channels' start times.
  expect(flashTimes.length).toBeGreaterThanOrEqual(seconds - 2)
  const videoStart = starts.get(videoChannelId) ?? Number.NaN
  for (const [position, [channelId]] of Object.entries(STORED_TONES).entries()) {
    const expected = foldSecond(((starts.get(channelId) ?? Number.NaN) - videoStart) / 1000)
    const errors = syncErrors(flashTimes, beepTimes[position] ?? [], expected, {
      from: 0,
      to: Number(probed.format.duration),
      margin: 0.05,
    })
    const where = `${channelId} beeps vs ${videoChannelId} flashes (expected offset ${expected.toFixed(3)} s): ${JSON.stringify(errors)}`
    expect(errors.length, where).toBeGreaterThanOrEqual(seconds - 3)
    // At the start and at the end of the recording, within the 40 ms asked for.
    for (const { error } of [...errors.slice(0, 2), ...errors.slice(-2)]) {
      expect(Math.abs(error), where).toBeLessThanOrEqual(0.04)
    }
    // No constant lag between channels placed by their start times: the mean error stays within
    // 10 ms (measured: about 1 ms), while a single late beep at the very end does not fail it.
    const meanError = errors.reduce((sum, { error }) => sum + error, 0) / errors.length
    expect(Math.abs(meanError), where).toBeLessThanOrEqual(0.01)
  }
}

describe("recorder → gateway → muxer → exported (real processes)", () => {
  it("exports the mix of every stored tone in sync with the display, any display on request, never a store: false channel", async () => {
    const listener = await listenOnWebSocket(server)
    socket = listener
    const created = await server.data("POST", "/collection/default/capture/session", {
      end_user_id: "user-export",
      callback_url: hooks.url,
      ws_connection_id: listener.connectionId,
    })
    const session = created.id as string
    const token = (await server.data("POST", "/capture/session/token", { user_id: "user-export" }))
      .token as string

    const recorded = await record({
      server: server.base,
      token,
      session,
      spoolDir: join(work, "spool"),
      durationMs: RECORD_MS,
      channels: CHANNELS,
    })
    expect(recorded.code, recorded.output).toBe(0)

    // The exported webhook (signed) and WebSocket event.
    const exportedOf = (channelId: string) =>
      pollUntil(
        `capture_session.exported of ${channelId} by webhook and WebSocket`,
        async () => ({
          hook: hooks.received.find(
            (h) =>
              h.envelope.capture_session_id === session &&
              h.envelope.event === "capture_session.exported" &&
              h.envelope.data.video_channel_id === channelId,
          ),
          socket: listener.events.find(
            (e) =>
              e.capture_session_id === session &&
              e.event === "capture_session.exported" &&
              e.data.video_channel_id === channelId,
          ),
        }),
        (found) => found.hook !== undefined && found.socket !== undefined,
        { timeoutMs: 60_000 },
      )
    const primary = await exportedOf("display:1")
    const primaryHook = primary.hook?.envelope
    if (primaryHook?.event !== "capture_session.exported") throw new Error("no exported webhook")
    const videoId = primaryHook.data.exported_video_id
    const primarySocket = primary.socket
    if (primarySocket?.event !== "capture_session.exported") throw new Error("no exported WebSocket event")
    expect(primarySocket.data.exported_video_id).toBe(videoId)

    // Every webhook was signed with the account's secret; both paths saw the whole lifecycle, in
    // order (webhooks are at least once: a repeat has the same id).
    const sessionHooks = hooks.received.filter((h) => h.envelope.capture_session_id === session)
    expect(sessionHooks.every((h) => h.verified && h.webhookId === h.envelope.id)).toBe(true)
    expect(hooks.undecodable).toEqual([])
    expect(listener.undecodable).toEqual([])
    const lifecycle = [
      "capture_session.created",
      "capture_session.starting",
      "capture_session.active",
      "capture_session.stopping",
      "capture_session.stopped",
      "capture_session.exported",
    ]
    const onceEach = new Map(sessionHooks.map((h) => [h.envelope.id, h.envelope.event]))
    expect([...onceEach.values()]).toEqual(lifecycle)
    expect(listener.events.filter((e) => e.capture_session_id === session).map((e) => e.event)).toEqual(
      lifecycle,
    )

    // What was stored: every channel from index 0, the store: false one's bytes dropped at stop.
    const media = await MediaStore.open(nc)
    const records = await media.list(session)
    // When each channel's first sample was taken: an audio segment's timeline opens with the AAC
    // encoder's priming frame, so its first sample comes that long after its start_ms.
    const starts = new Map(
      CHANNELS.map(({ id, type }) => [
        id,
        (records.find((r) => r.channel_id === id && r.index === 0)?.start_ms ?? 0) +
          (type === "audio" ? AAC_PRIMING_MS : 0),
      ]),
    )
    for (const { id } of CHANNELS)
      expect(
        records.some((r) => r.channel_id === id && r.index === 0),
        id,
      ).toBe(true)
    for (const r of records.filter((r) => r.channel_id === "mic:aux")) {
      expect(await media.read(session, r.channel_id, r.index), `mic:aux #${r.index}`).toBeUndefined()
    }
    // display:2 started later than display:1: its flashes are out of phase with display:1's, so a
    // sync check against the wrong display would fail.
    const phase = foldSecond(((starts.get("display:2") ?? 0) - (starts.get("display:1") ?? 0)) / 1000)
    expect(Math.abs(phase)).toBeGreaterThan(0.1)

    // Ask for display:2's export (API key), and measure the primary export meanwhile.
    const requested = await server.data("POST", `/collection/default/capture/session/${session}/export`, {
      video_channel_id: "display:2",
      ws_connection_id: listener.connectionId,
    })
    expect(requested).toMatchObject({ session_id: session, video_channel_id: "display:2" })
    expect(["exporting", "exported"]).toContain(requested.export_status)

    const first = await download(videoId)
    expect(first.video.metadata.video_channel_id).toBe("display:1")
    expect([...first.video.metadata.audio_channel_ids].sort()).toEqual([
      "mic:default",
      "system_audio:default",
    ])
    expect(first.video.metadata.channels.map((c) => c.channel_id).sort()).toEqual(STORED)
    expect(first.video.metadata.gaps).toEqual([])
    for (const asset of first.video.metadata.channels) {
      const raw = await fetch(`${server.base}/media/${videoId}/${asset.file}`)
      expect(raw.status, asset.file).toBe(200)
      const file = join(work, `${videoId}-${asset.channel_id.replace(":", "_")}`)
      await writeFile(file, new Uint8Array(await raw.arrayBuffer()))
      expect((await probe(file)).streams.map((s) => s.codec_type)).toEqual([asset.type])
    }
    await checkExport(first.file, first.video, starts, "display:1")

    const second = await exportedOf("display:2")
    const secondHook = second.hook?.envelope
    if (secondHook?.event !== "capture_session.exported") throw new Error("no exported webhook for display:2")
    const secondId = secondHook.data.exported_video_id
    expect(secondId).not.toBe(videoId)
    const other = await download(secondId)
    expect(other.video.metadata.video_channel_id).toBe("display:2")
    expect([...other.video.metadata.audio_channel_ids].sort()).toEqual([
      "mic:default",
      "system_audio:default",
    ])
    await checkExport(other.file, other.video, starts, "display:2")

    // The session lists both exports (its read model follows the events within moments).
    const view = await pollUntil(
      "the session listing the second export",
      () => server.data("GET", `/collection/default/capture/session/${session}`),
      (v) => Object.keys((v.exported_videos ?? {}) as object).length === 2,
      { timeoutMs: 10_000 },
    )
    expect(view.status).toBe("exported")
    expect(view.exported_video_id).toBe(videoId)
    expect(view.exported_videos).toEqual({ "display:1": videoId, "display:2": secondId })
    // Each stored channel's rtstream names its raw asset; the store: false one has none.
    // (An rtstream's name is its capture channel; channel_id the category VideoDB's SDK matches.)
    const rtstreams = view.rtstreams as ReadonlyArray<{
      name: string
      channel_id: string
      exported_asset_id: string | null
    }>
    expect(rtstreams.map((r) => r.name).sort()).toEqual([...STORED, "mic:aux"].sort())
    for (const rtstream of rtstreams) {
      expect(rtstream.channel_id, rtstream.name).toBe(rtstreamCategoryOf(rtstream.name as ChannelId))
      if (STORED.includes(rtstream.name))
        expect(rtstream.exported_asset_id, rtstream.name).toEqual(expect.any(String))
      else expect(rtstream.exported_asset_id, rtstream.name).toBeNull()
    }
  }, 240_000)
})
