/**
 * bench:ingest — segments per second and MB/s the gateway stores while 1, 50 and 200 sessions of
 * three channels (display:1, mic:default, system_audio:default) upload at once, each channel its
 * segments in order as the recorder does, beside the same uploads to a minimal node:http server
 * on loopback measured in the same run; then the recorder's CPU per channel: its own ffmpeg
 * command line capturing a 1280x720 30 fps X display and an audio channel, and its synthetic
 * sources.
 *
 * The server is `capture serve --role gateway` as a child process against a nats-server child
 * process (without the muxer, which would remux every segment on the same cores; `--with-muxer`
 * runs it too). The baseline is a node:http child process that reads and hashes each body
 * (lib/rawUploadServer.ts). Both get the same real MPEG-TS segments, encoded once with the
 * recorder's encoder settings (lib/mediaSegments.ts), from the same node:http keep-alive client.
 *
 *   pnpm bench:ingest [--sessions 1,50,200] [--megabytes 150] [--segments N] [--rounds 3]
 *                     [--video-kbps N] [--capture-seconds 10] [--skip-upload] [--skip-capture]
 *                     [--with-muxer] [--cpu-prof DIR] [--quick]
 *
 * `--cpu-prof DIR` writes the server's V8 CPU profile (`node --cpu-prof`) into DIR when it stops.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { DEFAULT_COLLECTION, START_SESSION_ROUTE, segmentPath, stopSessionPath } from "@capture/protocol"
import {
  canDrawText,
  defaultCaptureSettings,
  discoverChannels,
  resolveFfmpeg,
  syntheticChannels,
} from "@capture/recorder"
import { startNatsServer } from "@capture/testkit"
import { startBenchDesktop } from "./lib/benchDesktop.js"
import { type CaptureCpu, measureCaptureCpu } from "./lib/captureCpu.js"
import { startCaptureServer } from "./lib/captureServer.js"
import { positiveInteger } from "./lib/flags.js"
import { accepted, type JsonClient, makeJsonClient, stringField } from "./lib/jsonClient.js"
import { latencyFigure } from "./lib/latency.js"
import { type ChannelMedia, makeSessionMedia } from "./lib/mediaSegments.js"
import { descendants, totalCpuMs } from "./lib/processCpu.js"
import { waitForQuietChildren } from "./lib/quiet.js"
import { startRawUploadServer } from "./lib/rawUploadServer.js"
import { makeSegmentClient, type SegmentClient } from "./lib/segmentClient.js"
import { type Figure, measure, printTable, writeResults } from "./lib/stats.js"
import { Teardown } from "./lib/teardown.js"

const API_KEY = "sk-bench-ingest-key"

const { values: flags } = parseArgs({
  options: {
    sessions: { type: "string" },
    megabytes: { type: "string" },
    segments: { type: "string" },
    rounds: { type: "string" },
    "video-kbps": { type: "string" },
    "capture-seconds": { type: "string" },
    "skip-upload": { type: "boolean", default: false },
    "skip-capture": { type: "boolean", default: false },
    "with-muxer": { type: "boolean", default: false },
    "cpu-prof": { type: "string" },
    quick: { type: "boolean", default: false },
  },
})
const quick = flags.quick
/** Sessions uploading at once, one shape each. */
const SHAPES = (flags.sessions ?? "1,50,200").split(",").map((s) => positiveInteger("sessions", s.trim(), 1))
/** Megabytes each shape uploads per round (whole segments of every channel, at least two each). */
const MEGABYTES = positiveInteger("megabytes", flags.megabytes, quick ? 40 : 150)
const SEGMENTS = flags.segments === undefined ? undefined : positiveInteger("segments", flags.segments, 1)
const ROUNDS = positiveInteger("rounds", flags.rounds, quick ? 1 : 3)
const VIDEO_KBPS =
  flags["video-kbps"] === undefined ? undefined : positiveInteger("video-kbps", flags["video-kbps"], 1)
const CAPTURE_SECONDS = positiveInteger("capture-seconds", flags["capture-seconds"], quick ? 4 : 10)
/** Distinct segments per channel; uploads cycle through them under new indexes. */
const VARIANTS = 4
const SEGMENT_SECONDS = defaultCaptureSettings.segmentSeconds

type Target = "raw" | "gateway"

/** Share of one core each process used during a timed window (1 = one core busy throughout). */
interface CpuShare {
  readonly client: number
  /** The server uploaded to: `capture serve` (and its children) or the raw server. */
  readonly server: number
  readonly nats: number
}

/** One shape's figures in one round. */
interface UploadRound {
  /** Uploads as operations: segments/s and each upload's latency. */
  readonly uploads: Figure
  readonly segmentsPerChannel: number
  readonly bytes: number
  readonly megabytesPerSecond: number
  /** Uploads sent again after going out on a kept-alive socket the server had just closed. */
  readonly retries: number
  readonly cpu: CpuShare
}

/** The servers whose CPU is counted; set once they run. */
const processes = { gateway: 0, raw: 0 }

/** Runs `timed` and reports the CPU share of this process, `target`'s server and nats-server meanwhile. */
const withCpu = async <A>(target: Target, timed: () => Promise<A>): Promise<[A, CpuShare]> => {
  const tree = (pid: number) => [pid, ...descendants(pid)]
  const gateway = tree(processes.gateway)
  const raw = tree(processes.raw)
  const server = target === "gateway" ? gateway : raw
  const nats = descendants(process.pid).filter((pid) => !gateway.includes(pid) && !raw.includes(pid))
  const before = { client: process.cpuUsage(), server: totalCpuMs(server), nats: totalCpuMs(nats) }
  const started = performance.now()
  const result = await timed()
  const wallMs = performance.now() - started
  const client = process.cpuUsage(before.client)
  return [
    result,
    {
      client: (client.user + client.system) / 1000 / wallMs,
      server: (totalCpuMs(server) - before.server) / wallMs,
      nats: (totalCpuMs(nats) - before.nats) / wallMs,
    },
  ]
}

/** The round with the median segment rate. */
const median = (rounds: ReadonlyArray<UploadRound>): UploadRound => {
  const sorted = [...rounds].sort((a, b) => a.uploads.perSecond - b.uploads.perSecond)
  const middle = sorted[Math.floor(sorted.length / 2)]
  if (middle === undefined) throw new Error("no rounds")
  return middle
}

// --- uploads ------------------------------------------------------------------------------------

/** Bytes of one segment of every channel: what a session sends per segment length. */
const sessionSegmentBytes = (media: ReadonlyArray<ChannelMedia>) =>
  media.reduce(
    (sum, channel) =>
      sum + channel.segments.reduce((s, segment) => s + segment.bytes.length, 0) / channel.segments.length,
    0,
  )

/** Segments each channel uploads per round with `sessions` uploading. */
const segmentsPerChannel = (media: ReadonlyArray<ChannelMedia>, sessions: number) =>
  SEGMENTS ?? Math.max(quick ? 1 : 2, Math.ceil((MEGABYTES * 1e6) / (sessions * sessionSegmentBytes(media))))

/** A session and the client token its recorder uploads with (the gateway bounds uploads per credential). */
interface UploadingSession {
  readonly id: string
  readonly token: string
}

/**
 * One session's uploads: its channels at once, each channel's segments in order (the next after
 * the answer to the last), the last one marked final, as the recorder sends them.
 */
const uploadSession = async (
  client: SegmentClient,
  media: ReadonlyArray<ChannelMedia>,
  { id: sessionId, token }: UploadingSession,
  count: number,
  samples: { latencies: Array<number>; bytes: number },
) => {
  const startMs = Date.now()
  await Promise.all(
    media.map(async (channel) => {
      let at = startMs
      for (let index = 0; index < count; index++) {
        const segment = channel.segments[index % channel.segments.length]
        if (segment === undefined) throw new Error(`${channel.channelId} has no segments`)
        const path = segmentPath(sessionId, channel.channelId, index)
        const started = performance.now()
        const response = await client.put(path, segment.bytes, {
          "x-access-token": token,
          "x-segment-start-ms": String(at),
          "x-segment-duration-ms": String(segment.durationMs),
          "x-segment-sha256": segment.sha256,
          ...(index === count - 1 ? { "x-segment-final": "1" } : {}),
        })
        samples.latencies.push(performance.now() - started)
        if (accepted(`PUT ${path}`, response).duplicate !== false)
          throw new Error(`PUT ${path} was not stored as new: ${JSON.stringify(response.body)}`)
        samples.bytes += segment.bytes.length
        at += segment.durationMs
      }
    }),
  )
}

const uploadRound = async (
  target: Target,
  client: SegmentClient,
  media: ReadonlyArray<ChannelMedia>,
  sessions: ReadonlyArray<UploadingSession>,
  count: number,
): Promise<UploadRound> => {
  const samples = { latencies: [] as Array<number>, bytes: 0 }
  const retried = client.retries()
  const [seconds, cpu] = await withCpu(target, async () => {
    const started = performance.now()
    await Promise.all(sessions.map((session) => uploadSession(client, media, session, count, samples)))
    return (performance.now() - started) / 1000
  })
  const name = `${target === "raw" ? "raw node:http" : "gateway"}, ${sessions.length} × ${media.length} channels`
  const latency = latencyFigure(name, samples.latencies)
  return {
    uploads: {
      name,
      operations: samples.latencies.length,
      seconds,
      perSecond: samples.latencies.length / seconds,
      p50Ms: latency.p50Ms,
      p99Ms: latency.p99Ms,
    },
    segmentsPerChannel: count,
    bytes: samples.bytes,
    megabytesPerSecond: samples.bytes / 1e6 / seconds,
    retries: client.retries() - retried,
    cpu,
  }
}

/** The three channels as the recorder starts them. */
const startChannels = (media: ReadonlyArray<ChannelMedia>) =>
  media.map((channel) => ({
    channel_id: channel.channelId,
    type: channel.type,
    store: true,
    is_primary: channel.channelId === "display:1",
  }))

/**
 * Creates (API key) and starts (client token, as the recorder does) `count` sessions, each with a
 * client token of its own to upload with, as each recorder has.
 */
const openSessions = async (
  api: JsonClient,
  recorder: JsonClient,
  media: ReadonlyArray<ChannelMedia>,
  count: number,
): Promise<Array<UploadingSession>> => {
  const sessions: Array<UploadingSession> = []
  await measure("opening sessions", count, 32, async () => {
    const created = await api.send("POST", `/collection/${DEFAULT_COLLECTION}/capture/session`, {
      end_user_id: "bench",
    })
    const id = stringField(accepted("create", created), "id")
    accepted(
      "start",
      await recorder.send("POST", START_SESSION_ROUTE, {
        session_id: id,
        channels: startChannels(media),
      }),
    )
    const token = stringField(
      accepted("token", await api.send("POST", "/capture/session/token", { expires_in: 24 * 60 * 60 })),
      "token",
    )
    sessions.push({ id, token })
  })
  return sessions
}

/** Stops the sessions (every channel sent its final segment, so they stop at once); counts statuses. */
const stopSessions = async (recorder: JsonClient, sessions: ReadonlyArray<UploadingSession>) => {
  const statuses: Record<string, number> = {}
  await measure("stopping sessions", sessions.length, 32, async (i) => {
    const status = stringField(
      accepted("stop", await recorder.send("POST", stopSessionPath(sessions[i]?.id ?? ""))),
      "status",
    )
    statuses[status] = (statuses[status] ?? 0) + 1
  })
  return statuses
}

const uploadBenchmark = async (teardown: Teardown, media: ReadonlyArray<ChannelMedia>) => {
  const nats = teardown.add("nats-server", await startNatsServer({ kind: "process" }))
  const server = teardown.add(
    "capture serve",
    await startCaptureServer({
      natsUrl: nats.url,
      apiKey: API_KEY,
      args: ["--role", flags["with-muxer"] ? "all" : "gateway"],
      // Sessions wait untimed between a round's start and its uploads: none may go silent.
      env: { CAPTURE_SILENCE_TIMEOUT_MS: String(3_600_000) },
      nodeArgs: flags["cpu-prof"] === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${flags["cpu-prof"]}`],
    }),
  )
  const raw = teardown.add("raw upload server", await startRawUploadServer())
  processes.gateway = server.pid
  processes.raw = raw.pid
  const inFlight = Math.max(...SHAPES) * media.length
  const api = makeJsonClient(server.url, { "x-access-token": API_KEY }, { maxSockets: 32 })
  const token = stringField(
    accepted("token", await api.send("POST", "/capture/session/token", { expires_in: 24 * 60 * 60 })),
    "token",
  )
  const recorder = makeJsonClient(server.url, { "x-access-token": token }, { maxSockets: 32 })
  const clients: Record<Target, SegmentClient> = {
    gateway: makeSegmentClient(server.url, { "x-access-token": token }, { maxSockets: inFlight }),
    raw: makeSegmentClient(raw.url, { "x-access-token": token }, { maxSockets: inFlight }),
  }
  teardown.add("clients", {
    stop: async () => {
      for (const client of [api, recorder, clients.gateway, clients.raw]) client.close()
    },
  })
  console.log(
    `server: capture serve --role ${flags["with-muxer"] ? "all" : "gateway"} child process (pid ${server.pid}) at ${server.url}, ` +
      `NATS: ${nats.kind} at ${nats.url}; baseline: node:http child process (pid ${raw.pid}) at ${raw.url}`,
  )
  console.log(
    `client: node:http keep-alive (up to ${inFlight} sockets per server), ${SHAPES.join(" / ")} sessions × ${ROUNDS} rounds`,
  )

  let sessionNumber = 0
  const rawSessions = (count: number) =>
    Array.from({ length: count }, () => ({ id: `cap-raw${String(sessionNumber++).padStart(8, "0")}`, token }))
  const notStopped: Array<Record<string, number>> = []
  const run = async (target: Target, sessions: number, count: number): Promise<UploadRound> => {
    if (target === "raw") return uploadRound("raw", clients.raw, media, rawSessions(sessions), count)
    const opened = await openSessions(api, recorder, media, sessions)
    await settle()
    const round = await uploadRound("gateway", clients.gateway, media, opened, count)
    const statuses = await stopSessions(recorder, opened)
    if (statuses.stopped !== opened.length) notStopped.push(statuses)
    return round
  }
  const quietWaits: Array<number> = []
  const settle = async () => {
    const wait = await waitForQuietChildren()
    quietWaits.push(Math.round(wait.waitedMs))
    if (!wait.quiet)
      console.log(`(servers still busy after ${wait.waitedMs.toFixed(0)} ms; measuring anyway)`)
  }

  // Warm up JIT, sockets and the stream files on both sides.
  const warmUp = Math.min(50, Math.max(...SHAPES))
  await run("raw", warmUp, 1)
  await run("gateway", warmUp, 1)

  // Raw and gateway alternate, shape by shape, over several rounds; each reports its median round.
  const rounds = new Map<number, Record<Target, Array<UploadRound>>>(
    SHAPES.map((sessions) => [sessions, { raw: [], gateway: [] }]),
  )
  for (let round = 0; round < ROUNDS; round++) {
    for (const sessions of SHAPES) {
      const count = segmentsPerChannel(media, sessions)
      const shape = rounds.get(sessions)
      if (shape === undefined) throw new Error(`no shape ${sessions}`)
      await settle()
      shape.raw.push(await run("raw", sessions, count))
      await settle()
      shape.gateway.push(await run("gateway", sessions, count))
      console.log(
        `round ${round + 1}/${ROUNDS}, ${sessions} sessions: raw ${shape.raw.at(-1)?.megabytesPerSecond.toFixed(1)} MB/s, ` +
          `gateway ${shape.gateway.at(-1)?.megabytesPerSecond.toFixed(1)} MB/s`,
      )
    }
  }
  if (notStopped.length > 0)
    console.log(`sessions not stopped at once after their final segments: ${JSON.stringify(notStopped)}`)
  const retries = { raw: clients.raw.retries(), gateway: clients.gateway.retries() }
  if (retries.raw + retries.gateway > 0)
    console.log(
      `uploads sent again on a fresh socket (the server had closed the kept-alive one): raw ${retries.raw}, gateway ${retries.gateway}`,
    )
  const medians = SHAPES.map((sessions) => {
    const shape = rounds.get(sessions)
    if (shape === undefined) throw new Error(`no shape ${sessions}`)
    return { sessions, raw: median(shape.raw), gateway: median(shape.gateway) }
  })
  return {
    nats: nats.kind,
    medians,
    allRounds: Object.fromEntries(rounds),
    quietWaitsMs: quietWaits,
    retries,
  }
}

// --- the recorder's capture ---------------------------------------------------------------------

const captureBenchmark = async (teardown: Teardown, ffmpeg: string): Promise<Array<CaptureCpu>> => {
  const timing = { warmUpMs: 2_000, windowMs: CAPTURE_SECONDS * 1000 }
  const settings = defaultCaptureSettings
  const results: Array<CaptureCpu> = []
  let audioMeasured = false
  /** Why no device audio was measured (the synthetic tone stands in for it then). */
  let noAudio = "the desktop did not start"
  try {
    const desktop = teardown.add("desktop", await startBenchDesktop(ffmpeg))
    const channels = await discoverChannels({ env: desktop.env })
    const display = channels.displays.default
    if (display === undefined) throw new Error(`the recorder found no display on ${desktop.display}`)
    const xServer = [desktop.serverPids.x]
    const size = /\d+x\d+/.exec(display.name)?.[0] ?? display.name
    const geometry = `${display.id} ${size} ${settings.frameRate} fps, x11grab`
    console.log(
      `capture: Xvfb ${desktop.display}; the moving screen is testsrc2 played full screen by ffmpeg -f sdl2 ` +
        `(its drawing counts in the X server's CPU); audio: ${desktop.noPulse === undefined ? "PulseAudio, null sink with a tone playing into it" : `no PulseAudio (${desktop.noPulse})`}`,
    )
    results.push(
      await measureCaptureCpu({
        ffmpeg,
        channel: display,
        settings,
        env: desktop.env,
        source: `${geometry}, still screen`,
        serverPids: xServer,
        teardown,
        ...timing,
      }),
    )
    const painter = await desktop.animate()
    try {
      results.push(
        await measureCaptureCpu({
          ffmpeg,
          channel: display,
          settings,
          env: desktop.env,
          source: `${geometry}, moving screen`,
          serverPids: xServer,
          teardown,
          ...timing,
        }),
      )
    } finally {
      await painter.stop()
    }
    noAudio = `no PulseAudio: ${desktop.noPulse}`
    const audio = channels.systemAudio.default
    const pulse = desktop.serverPids.pulse
    if (desktop.noPulse === undefined && audio !== undefined && pulse !== undefined) {
      results.push(
        await measureCaptureCpu({
          ffmpeg,
          channel: audio,
          settings,
          env: desktop.env,
          source: `${audio.id}, pulse ${audio.source.kind === "pulse" ? audio.source.device : audio.name}`,
          serverPids: [pulse],
          teardown,
          ...timing,
        }),
      )
      audioMeasured = true
    } else if (desktop.noPulse === undefined) {
      noAudio = "the recorder found no system audio"
    }
    await desktop.stop()
  } catch (error) {
    console.log(`display capture not measured: ${error instanceof Error ? error.message : String(error)}`)
  }
  // What `capture record --synthetic` runs: its default pattern and tone.
  const synthetic = syntheticChannels()
  const syntheticSettings = { ...settings, drawText: await canDrawText(ffmpeg) }
  const video = syntheticSettings.syntheticVideo
  for (const channel of [synthetic.displays.default, synthetic.mics.default]) {
    if (channel === undefined) continue
    const source =
      channel.type === "video"
        ? `--synthetic ${channel.id} ${video.width}x${video.height} ${video.frameRate} fps, testsrc2${syntheticSettings.drawText ? " + clock" : ""}`
        : `--synthetic ${channel.id}, sine${audioMeasured ? "" : ` (the audio channel here: ${noAudio})`}`
    results.push(
      await measureCaptureCpu({
        ffmpeg,
        channel,
        settings: syntheticSettings,
        env: process.env,
        source,
        teardown,
        ...timing,
      }),
    )
  }
  return results
}

// --- the run ------------------------------------------------------------------------------------

const printUploads = (
  media: ReadonlyArray<ChannelMedia>,
  medians: Awaited<ReturnType<typeof uploadBenchmark>>["medians"],
) => {
  printTable(
    "Segments stored per second, N sessions × 3 channels uploading at once, each channel in order (ratio: against raw node:http)",
    medians.flatMap(({ raw, gateway }) => [
      { figure: raw.uploads },
      { figure: gateway.uploads, baseline: raw.uploads },
    ]),
  )
  // A session sends one segment of each channel per segment length.
  const sessionMegabytesPerSecond = sessionSegmentBytes(media) / 1e6 / SEGMENT_SECONDS
  console.log(
    `\nMB/s stored (1 MB = 10^6 bytes); real time = sessions recording live that rate would carry (${sessionMegabytesPerSecond.toFixed(2)} MB/s each)`,
  )
  console.log(
    `${"sessions".padEnd(10)}${"segs/channel".padStart(13)}${"raw MB/s".padStart(10)}${"gateway MB/s".padStart(14)}${"ratio".padStart(8)}${"real time".padStart(11)}` +
      `${"server CPU raw / gw".padStart(21)}${"nats CPU".padStart(10)}${"client CPU".padStart(12)}`,
  )
  const percent = (share: number) => `${(share * 100).toFixed(0)}%`
  for (const { sessions, raw, gateway } of medians) {
    console.log(
      `${String(sessions).padEnd(10)}${String(gateway.segmentsPerChannel).padStart(13)}${raw.megabytesPerSecond.toFixed(1).padStart(10)}` +
        `${gateway.megabytesPerSecond.toFixed(1).padStart(14)}${`${(gateway.megabytesPerSecond / raw.megabytesPerSecond).toFixed(2)}x`.padStart(8)}` +
        `${(gateway.megabytesPerSecond / sessionMegabytesPerSecond).toFixed(0).padStart(11)}` +
        `${`${percent(raw.cpu.server)} / ${percent(gateway.cpu.server)}`.padStart(21)}${percent(gateway.cpu.nats).padStart(10)}` +
        `${`${percent(raw.cpu.client)} / ${percent(gateway.cpu.client)}`.padStart(12)}`,
    )
  }
}

const printCapture = (results: ReadonlyArray<CaptureCpu>) => {
  console.log(
    `\nRecorder CPU per channel: its ffmpeg (captureArgs), CPU seconds per second of recording over ${CAPTURE_SECONDS} s (1.00 = one core)`,
  )
  console.log(`${"".padEnd(58)}${"ffmpeg".padStart(8)}${"X/Pulse".padStart(9)}${"kbit/s".padStart(8)}`)
  for (const result of results) {
    console.log(
      `${result.source.padEnd(58)}${result.cores.toFixed(2).padStart(8)}${(result.serverCores?.toFixed(2) ?? "").padStart(9)}${result.kbps.toFixed(0).padStart(8)}`,
    )
  }
}

const main = async () => {
  const runStarted = performance.now()
  const teardown = new Teardown()
  try {
    const ffmpeg = resolveFfmpeg()
    let uploads: Awaited<ReturnType<typeof uploadBenchmark>> | undefined
    let media: ReadonlyArray<ChannelMedia> = []
    if (!flags["skip-upload"]) {
      const dir = mkdtempSync(join(tmpdir(), "capture-bench-segments-"))
      teardown.add("segment folder", { stop: async () => rmSync(dir, { recursive: true, force: true }) })
      media = await makeSessionMedia({
        ffmpeg,
        dir,
        count: VARIANTS,
        ...(VIDEO_KBPS === undefined ? {} : { videoKbps: VIDEO_KBPS }),
      })
      for (const channel of media) {
        const sizes = channel.segments.map((segment) => segment.bytes.length)
        console.log(
          `${channel.channelId}: ${channel.description}; segments of ${Math.min(...sizes).toLocaleString("en")}–${Math.max(...sizes).toLocaleString("en")} bytes`,
        )
      }
      uploads = await uploadBenchmark(teardown, media)
      // The servers go before the capture is measured: it has the machine to itself.
      await teardown.run()
    }
    const capture = flags["skip-capture"] ? [] : await captureBenchmark(teardown, ffmpeg)

    if (uploads !== undefined) printUploads(media, uploads.medians)
    if (capture.length > 0) printCapture(capture)
    if (uploads !== undefined) {
      console.log(
        `\ngateway/raw segments per second: ${uploads.medians
          .map(
            ({ sessions, raw, gateway }) =>
              `${(gateway.uploads.perSecond / raw.uploads.perSecond).toFixed(2)}x at ${sessions}`,
          )
          .join(", ")} sessions`,
      )
    }
    const file = writeResults("ingest", {
      at: new Date().toISOString(),
      node: process.version,
      server: `capture serve --role ${flags["with-muxer"] ? "all" : "gateway"} child process`,
      baseline: "node:http child process reading and hashing each body",
      client: "node:http keep-alive Agent",
      quick,
      rounds: ROUNDS,
      shapes: SHAPES,
      media: media.map((channel) => ({
        channel: channel.channelId,
        description: channel.description,
        bytes: channel.segments.map((segment) => segment.bytes.length),
        durationsMs: channel.segments.map((segment) => segment.durationMs),
      })),
      uploads:
        uploads === undefined
          ? null
          : {
              nats: uploads.nats,
              median: uploads.medians,
              ratios: Object.fromEntries(
                uploads.medians.map(({ sessions, raw, gateway }) => [
                  sessions,
                  {
                    segmentsPerSecond: gateway.uploads.perSecond / raw.uploads.perSecond,
                    p50: gateway.uploads.p50Ms / raw.uploads.p50Ms,
                    p99: gateway.uploads.p99Ms / raw.uploads.p99Ms,
                  },
                ]),
              ),
              allRounds: uploads.allRounds,
              quietWaitsMs: uploads.quietWaitsMs,
              retries: uploads.retries,
            },
      capture,
      seconds: (performance.now() - runStarted) / 1000,
    })
    console.log(`results: ${file}`)
  } finally {
    await teardown.run()
  }
}

await main()
