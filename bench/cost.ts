/**
 * bench:cost — what a live recording costs the server: CPU seconds per recorded minute of N
 * concurrent three-channel sessions sent in real time through `capture serve`, per process kind
 * (serve, the ffmpeg runs it starts, nats-server), beside one ffmpeg one-shot mux of the same
 * media measured in the same run; the server's RSS per live session; and how far the muxer fell
 * behind (segment records its media consumer had pending or unacknowledged, at worst).
 *
 * The media is bench:export's synthetic recording (the recorder's own encoder and segment options:
 * a 1280x720 15 fps test pattern, the 440 Hz and 660 Hz tones of the synthetic mic and system
 * audio, 2 s MPEG-TS segments), cached. Each session PUTs each segment when the recorder would
 * have finished it (its end on the session's wall clock), the last one of each channel final,
 * then stops, as `capture record` does; the sessions start staggered over one segment. The
 * recorder's own capture runs on the client's machine and is not counted (nor made here: a
 * real-time 720p x264 encode per session would take the cores the server is measured on).
 *
 *   pnpm bench:cost [--minutes 2] [--sessions 1] [--one-process] [--profile DIR] [--mix native,faad,ffmpeg]
 *   (by default `capture serve --role gateway` and `--role muxer` run as two processes, so the
 *   muxer's share is its own process and its ffmpeg runs: an upper bound, since the muxer process
 *   also takes its turn at the session workers' shared durables (projector, reactor, timers);
 *   --one-process: one `capture serve` with every role, where the muxer is not told apart;
 *   --profile DIR: a `node --cpu-prof` profile of the muxer's process, written to DIR as it stops;
 *   --mix: the muxer's mix windows in process with long-lived decoders (native), with one faad
 *   per channel run (faad), or by one ffmpeg run per window (ffmpeg); each through its own
 *   servers on the same media, one after the other)
 */
import { readFileSync } from "node:fs"
import { loadavg } from "node:os"
import { parseArgs } from "node:util"
import { DEFAULT_COLLECTION, START_SESSION_ROUTE, stopSessionPath } from "@capture/protocol"
import { startNatsServer } from "@capture/testkit"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { type CaptureServer, startCaptureServer } from "./lib/captureServer.js"
import {
  type CpuSeconds,
  cpuNow,
  cpuSince,
  ffmpeg,
  MEDIA_CONSUMER,
  MEDIA_STREAM,
  makeUploader,
  oneShotMux,
  openEventSocket,
  VIDEO,
  validate,
} from "./lib/exportSession.js"
import { accepted, makeJsonClient, stringField } from "./lib/jsonClient.js"
import { waitForQuietChildren } from "./lib/quiet.js"
import { makeSegmentClient } from "./lib/segmentClient.js"
import { writeResults } from "./lib/stats.js"
import {
  killGenerators,
  type RecordedChannel,
  type SyntheticRecording,
  syntheticRecording,
} from "./lib/syntheticRecording.js"
import { Teardown } from "./lib/teardown.js"

const API_KEY = "sk-bench-cost-key"
/** Longest wait for `exported` after stop. */
const EXPORT_TIMEOUT_MS = 5 * 60_000
/** The issue's targets. */
const TARGET_TOTAL_RATIO = 2
const TARGET_MUXER_RATIO = 1.2
const TARGET_RSS_MB = 2

const { values: flags } = parseArgs({
  options: {
    minutes: { type: "string", default: "2" },
    sessions: { type: "string", default: "1" },
    mix: { type: "string", default: "native" },
    "one-process": { type: "boolean", default: false },
    /** A directory for a CPU profile of the muxer's process (`node --cpu-prof`), written as it exits. */
    profile: { type: "string" },
  },
})
/** Gateway and muxer as two processes, so the muxer's share is measured on its own. */
const SPLIT = flags["one-process"] !== true
/** How the server's muxer mixes audio windows (`CAPTURE_MUXER_MIX`); several: each in turn, same media. */
const MIX_MODES = (flags.mix ?? "native").split(",").map((part) => part.trim())
if (MIX_MODES.some((m) => m !== "native" && m !== "faad" && m !== "ffmpeg"))
  throw new Error(`--mix must be native, faad and/or ffmpeg separated by commas, got "${flags.mix}"`)
const MINUTES = Number(flags.minutes)
const SESSIONS = Number(flags.sessions)
if (!Number.isInteger(MINUTES) || MINUTES <= 0) throw new Error(`--minutes must be a positive integer`)
if (!Number.isInteger(SESSIONS) || SESSIONS <= 0) throw new Error(`--sessions must be a positive integer`)

/** The muxer's process starts so far, by `tool/lifetime`, from the server's `/metrics`. */
const processStarts = async (url: string): Promise<Record<string, number>> => {
  const response = await fetch(`${url}/metrics`, { headers: { "x-access-token": API_KEY } })
  const text = await response.text()
  const out: Record<string, number> = {}
  for (const match of text.matchAll(/^capture_muxer_processes_started_total\{([^}]*)\} (\S+)$/gm)) {
    const labels = Object.fromEntries(
      [...(match[1] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]] as const),
    )
    out[`${labels.tool ?? "?"}/${labels.lifetime ?? "?"}`] = Number(match[2])
  }
  return out
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)))

/** Resident memory of `pid` in MB (0 once it is gone). */
const rssMb = (pid: number): number => {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8")
      .split("\n")
      .find((l) => l.startsWith("VmRSS:"))
    return Number(line?.replace(/\D+/g, "") ?? 0) / 1024
  } catch {
    return 0
  }
}

const sumCpu = (a: CpuSeconds, b: CpuSeconds): CpuSeconds => ({
  serve: a.serve + b.serve,
  ffmpeg: a.ffmpeg + b.ffmpeg,
  nats: a.nats + b.nats,
  total: a.total + b.total,
})

const main = async () => {
  const teardown = new Teardown()
  teardown.add("ffmpeg generating media", { stop: async () => killGenerators() })
  try {
    await run()
  } finally {
    await teardown.run()
  }
}

const run = async () => {
  const started = performance.now()
  const loadBefore = loadavg()
  const recording = await syntheticRecording({
    minutes: MINUTES,
    ...VIDEO,
    ffmpeg,
    progress: (line) => console.log(line),
  })
  console.log(
    `${MINUTES} min recording (${recording.generated ? "generated" : "cached"}: ${recording.directory}), ` +
      `${SESSIONS} session(s) in real time, ${SPLIT ? "capture serve --role gateway + --role muxer" : "one capture serve (all roles)"}`,
  )
  const results: Array<Measured> = []
  for (const mix of MIX_MODES) {
    console.log(`\nmix ${mix}: ${SESSIONS} × ${MINUTES} min in real time…`)
    const inner = new Teardown()
    try {
      results.push(await measure(inner, recording, mix))
    } finally {
      await inner.run()
    }
    await waitForQuietChildren({ timeoutMs: 10_000 })
  }
  const oneShot = await oneShotMux(recording)
  const loadAfter = loadavg()
  const problems = [
    ...results.flatMap((r) => r.problems.map((p) => `mix ${r.mix}: ${p}`)),
    ...oneShot.validation.problems.map((p) => `one-shot: ${p}`),
  ]
  const oneShotPerMinute = oneShot.cpuSeconds / MINUTES
  const fixed = (v: number, d = 2) => v.toFixed(d)
  const rows = results.map((r) => {
    const per = (seconds: number) => seconds / (MINUTES * SESSIONS)
    const muxer = r.muxerCpu
    return {
      mix: r.mix,
      cpuPerRecordedMinute: {
        serve: per(r.cpu.serve),
        ffmpeg: per(r.cpu.ffmpeg),
        nats: per(r.cpu.nats),
        total: per(r.cpu.total),
        ...(muxer === undefined ? {} : { muxer: per(muxer.serve), muxerFfmpeg: per(muxer.ffmpeg) }),
      },
      ratio: per(r.cpu.total) / oneShotPerMinute,
      muxerRatio: muxer === undefined ? undefined : per(muxer.serve + muxer.ffmpeg) / oneShotPerMinute,
      rssPerSessionMb: r.rss.map((x) => (x.peak - x.idle) / SESSIONS),
      rss: r.rss,
      maxBacklog: r.maxBacklog,
      stopToExportedMs: r.stopToExportedMs,
      processesStartedPerRecordedMinute: Object.fromEntries(
        Object.entries(r.processesStarted).map(([key, n]) => [key, per(n)]),
      ),
    }
  })
  for (const row of rows) {
    const c = row.cpuPerRecordedMinute
    console.log(
      `\nmix ${row.mix}: CPU seconds per recorded minute (${SESSIONS} × ${MINUTES} min, create → exported)`,
    )
    console.log(
      `  serve ${fixed(c.serve)}   its ffmpeg ${fixed(c.ffmpeg)}   nats-server ${fixed(c.nats)}   total ${fixed(c.total)}`,
    )
    if (c.muxer !== undefined)
      console.log(
        `  of which the muxer process: itself ${fixed(c.muxer)}, its ffmpeg ${fixed(c.muxerFfmpeg ?? 0)} (with its share of the session workers)`,
      )
    console.log(
      `  total / one-shot (${fixed(oneShotPerMinute)}): ${fixed(row.ratio)}x (target ≤ ${TARGET_TOTAL_RATIO}x: ${row.ratio <= TARGET_TOTAL_RATIO ? "met" : "NOT met"})`,
    )
    if (row.muxerRatio !== undefined)
      console.log(
        `  muxer / one-shot: ${fixed(row.muxerRatio)}x (target ≤ ${TARGET_MUXER_RATIO}x: ${row.muxerRatio <= TARGET_MUXER_RATIO ? "met" : "NOT met"})`,
      )
    row.rss.forEach((x, i) => {
      console.log(
        `  RSS ${i === 0 ? "serve" : "muxer"}: idle ${fixed(x.idle, 0)} MB, peak ${fixed(x.peak, 0)} MB: ` +
          `${fixed(row.rssPerSessionMb[i] as number, 1)} MB per session (target ≤ ${TARGET_RSS_MB} MB at 200 sessions)`,
      )
    })
    console.log(
      `  muxer backlog at worst: ${row.maxBacklog} segment records (${3 * SESSIONS} = one segment per channel)`,
    )
    const starts = Object.entries(row.processesStartedPerRecordedMinute)
    console.log(
      `  processes the muxer started per recorded minute: ${
        starts.length === 0 ? "none" : starts.map(([key, n]) => `${key} ${fixed(n, 1)}`).join(", ")
      }`,
    )
    console.log(`  stop → exported (client): ${row.stopToExportedMs.map((ms) => fixed(ms, 0)).join(", ")} ms`)
  }
  console.log(`one-shot ffmpeg mux of the same media: ${fixed(oneShotPerMinute)} CPU s per recorded minute`)
  console.log(
    `load average before/after: ${loadBefore.map((l) => l.toFixed(1)).join(" ")} / ${loadAfter.map((l) => l.toFixed(1)).join(" ")} (2 cores, shared with other work)`,
  )
  if (problems.length > 0) {
    console.log(`INVALID: ${problems.join("; ")}`)
    process.exitCode = 1
  }
  const file = writeResults("cost", {
    at: new Date().toISOString(),
    node: process.version,
    minutes: MINUTES,
    sessions: SESSIONS,
    split: SPLIT,
    oneShotCpuPerRecordedMinute: oneShotPerMinute,
    rows,
    problems,
    loadavg: { before: loadBefore, after: loadAfter },
    seconds: (performance.now() - started) / 1000,
  })
  console.log(`results: ${file}`)
}

/** One mode's figures. */
interface Measured {
  readonly mix: string
  /** Child processes the muxer started, by `tool/lifetime` (its `/metrics` counter). */
  readonly processesStarted: Readonly<Record<string, number>>
  readonly cpu: CpuSeconds
  readonly muxerCpu: CpuSeconds | undefined
  readonly rss: ReadonlyArray<{ readonly idle: number; readonly peak: number }>
  readonly maxBacklog: number
  readonly stopToExportedMs: ReadonlyArray<number>
  readonly problems: ReadonlyArray<string>
}

const measure = async (teardown: Teardown, recording: SyntheticRecording, mix: string): Promise<Measured> => {
  const env = { CAPTURE_SILENCE_TIMEOUT_MS: String(10 * 60_000), CAPTURE_MUXER_MIX: mix }
  const nats = teardown.add("nats-server", await startNatsServer({ kind: "process" }))
  const gateway = teardown.add(
    "capture serve",
    await startCaptureServer({
      natsUrl: nats.url,
      apiKey: API_KEY,
      env,
      // A loaded machine (other work on the 2 cores) can take past the default 30 s to start it.
      readyTimeoutMs: 120_000,
      ...(SPLIT ? { args: ["--role", "gateway"] } : {}),
    }),
  )
  const servers: Array<CaptureServer> = [gateway]
  if (SPLIT)
    servers.push(
      teardown.add(
        "capture serve --role muxer",
        await startCaptureServer({
          natsUrl: nats.url,
          apiKey: API_KEY,
          env,
          readyTimeoutMs: 120_000,
          args: ["--role", "muxer"],
          readyPath: "/healthz",
          ...(flags.profile === undefined
            ? {}
            : { nodeArgs: ["--cpu-prof", "--cpu-prof-dir", flags.profile] }),
        }),
      ),
    )
  /** The process whose `/metrics` counts the muxer's process starts. */
  const muxerServer = servers.at(-1) as CaptureServer
  const nc = await connect({ servers: nats.url, noAsyncTraces: true })
  teardown.add("nats connection", { stop: () => nc.close() })
  const jsm = await jetstreamManager(nc)
  const client = makeJsonClient(gateway.url, { "x-access-token": API_KEY }, { maxSockets: 4 })
  const segmentClient = makeSegmentClient(
    gateway.url,
    { "x-access-token": API_KEY },
    { maxSockets: 3 * SESSIONS },
  )
  teardown.add("clients", {
    stop: async () => {
      client.close()
      segmentClient.close()
    },
  })
  const upload = makeUploader(segmentClient)
  const socket = await openEventSocket(client)
  teardown.add("websocket", { stop: async () => socket.close() })
  await waitForQuietChildren({ timeoutMs: 10_000 })

  // Sampled every second while the sessions run: RSS of each server, the muxer's backlog.
  const idleRss = servers.map((s) => rssMb(s.pid))
  const peakRss = [...idleRss]
  let maxBacklog = 0
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      servers.forEach((s, i) => {
        peakRss[i] = Math.max(peakRss[i] as number, rssMb(s.pid))
      })
      const info = await jsm.consumers.info(MEDIA_STREAM, MEDIA_CONSUMER).catch(() => undefined)
      if (info !== undefined) maxBacklog = Math.max(maxBacklog, info.num_pending + info.num_ack_pending)
      await sleep(1_000)
    }
  })()

  const startsBefore = await processStarts(muxerServer.url)
  const cpuBefore = servers.map((s) => cpuNow(s, servers))
  const session = async (n: number) => {
    await sleep((n * 2_000) / SESSIONS)
    const sessionId = stringField(
      accepted(
        "create",
        await client.send("POST", `/collection/${DEFAULT_COLLECTION}/capture/session`, {
          end_user_id: `bench-${n}`,
          ws_connection_id: socket.connectionId,
        }),
      ),
      "id",
    )
    accepted(
      "start",
      await client.send("POST", START_SESSION_ROUTE, {
        session_id: sessionId,
        channels: recording.channels.map((c) => ({
          channel_id: c.channelId,
          type: c.type,
          store: true,
          is_primary: c.channelId === "display:1",
        })),
        primary_video_channel_id: "display:1",
      }),
    )
    const firstSampleMs = Date.now()
    // Each segment once the recorder would have finished it.
    const sendChannel = async (channel: RecordedChannel) => {
      for (const [i, segment] of channel.segments.entries()) {
        await sleep(firstSampleMs + segment.offsetMs + segment.durationMs - Date.now())
        await upload(sessionId, channel.channelId, segment, firstSampleMs, i === channel.segments.length - 1)
      }
    }
    await Promise.all(recording.channels.map(sendChannel))
    const exported = socket.next(sessionId, "capture_session.exported", EXPORT_TIMEOUT_MS)
    const stopSent = performance.now()
    accepted("stop", await client.send("POST", stopSessionPath(sessionId)))
    const seen = await exported
    const data = seen.message.data as { exported_video_id?: string } | undefined
    return { sessionId, stopToExportedMs: seen.at - stopSent, videoId: data?.exported_video_id }
  }
  const sessions = await Promise.all(Array.from({ length: SESSIONS }, (_, n) => session(n)))
  const cpuAfter = servers.map((s) => cpuNow(s, servers))
  const startsAfter = await processStarts(muxerServer.url)
  sampling = false
  await sampler
  // nats-server is in every server's figures: counted once, with the first.
  const perServer = servers.map((_, i) => {
    const cpu = cpuSince(cpuBefore[i] as never, cpuAfter[i] as never)
    return i === 0 ? cpu : { ...cpu, nats: 0, total: cpu.serve + cpu.ffmpeg }
  })

  // The exports, read back (after the measurement).
  const problems: Array<string> = []
  for (const s of sessions) {
    const video = accepted(
      "video",
      await client.send("GET", `/collection/${DEFAULT_COLLECTION}/video/${s.videoId ?? "?"}`),
    )
    const checked = await validate(stringField(video, "download_url"), MINUTES)
    problems.push(...checked.problems.map((p) => `${s.sessionId}: ${p}`))
  }
  return {
    mix,
    processesStarted: Object.fromEntries(
      Object.entries(startsAfter).map(([key, n]) => [key, n - (startsBefore[key] ?? 0)]),
    ),
    cpu: perServer.reduce(sumCpu),
    // One process: the muxer's share is not told apart from the gateway's.
    muxerCpu: SPLIT ? perServer[1] : undefined,
    rss: servers.map((_, i) => ({ idle: idleRss[i] as number, peak: peakRss[i] as number })),
    maxBacklog,
    stopToExportedMs: sessions.map((s) => s.stopToExportedMs),
    problems,
  }
}

await main()
