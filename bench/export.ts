/**
 * bench:export — time from `stopped` to `exported` for three-channel recordings of 1, 10 and 60
 * minutes, beside a one-shot ffmpeg mux of the same media measured in the same run, and the CPU
 * spent per recorded minute by each.
 *
 * The recording is made faster than real time with the recorder's own ffmpeg options (a
 * 1280x720 15 fps test pattern, the 440 Hz and 660 Hz tones of the synthetic mic and system audio,
 * 2 s MPEG-TS segments) and cached. Each length gets a fresh nats-server child and `capture serve`
 * child (all-in-one: gateway + muxer), and goes through the real API and ingest route as a
 * recorder would: create, start (three stored channels), every segment but each channel's last
 * PUT in order (channels concurrently, as fast as the server answers), then — once the muxer's
 * media consumer has nothing pending, which is where it stands during a real-time recording — the
 * final segments and `stop`. Timed: the stored events' `SessionStopped` → `ExportCompleted`, and
 * the client's stop request → `capture_session.exported` on its WebSocket. The export's MP4 is
 * then read back with ffprobe (duration, streams, packets) so a broken export cannot pass for a
 * fast one. The baseline concatenates the same segments per channel, mixes the two tones (amix)
 * and writes one MP4 with the video stream-copied, as the export's muxed video does.
 *
 *   pnpm bench:export [--minutes 1,10,60] [--quick] [--remux native,ffmpeg]
 *   (--quick: 1 and 3 minutes; --remux: the muxer's raw pieces in process and/or by one ffmpeg run
 *   per segment, each through its own server on the same media, one after the other)
 */
import { loadavg } from "node:os"
import { parseArgs } from "node:util"
import {
  DEFAULT_COLLECTION,
  type SessionEvent,
  START_SESSION_ROUTE,
  stopSessionPath,
} from "@capture/protocol"
import { EventStore, openTopology } from "@capture/session-actor"
import { startNatsServer } from "@capture/testkit"
import { connect } from "@nats-io/transport-node"
import type { SyncResult } from "./lib/avSync.js"
import { startCaptureServer } from "./lib/captureServer.js"
import {
  type CpuSeconds,
  countPieces,
  cpuNow,
  cpuSince,
  ffmpeg,
  makeUploader,
  measureExportSync,
  muxerCaughtUp,
  type OneShot,
  oneShotMux,
  openEventSocket,
  type Validation,
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
  type RecordedSegment,
  recordingCacheDir,
  type SyntheticRecording,
  syntheticRecording,
} from "./lib/syntheticRecording.js"
import { Teardown } from "./lib/teardown.js"

const API_KEY = "sk-bench-export-key"
/** Longest wait for the muxer to catch up with an upload faster than real time. */
const CATCH_UP_TIMEOUT_MS = 60 * 60_000
/** Longest wait for `exported` after stop (the target is about 1 s). */
const EXPORT_TIMEOUT_MS = 10 * 60_000

const { values: flags } = parseArgs({
  options: {
    minutes: { type: "string" },
    quick: { type: "boolean", default: false },
    remux: { type: "string" },
  },
})
const quick = flags.quick
const LENGTHS: ReadonlyArray<number> = (() => {
  if (flags.minutes === undefined) return quick ? [1, 3] : [1, 10, 60]
  const values = flags.minutes.split(",").map((part) => Number(part.trim()))
  if (values.length === 0 || values.some((v) => !Number.isInteger(v) || v <= 0))
    throw new Error(`--minutes must be positive integers separated by commas, got "${flags.minutes}"`)
  return values
})()

/** How the server's muxer remuxes raw pieces (`CAPTURE_MUXER_REMUX`); several: each in turn, same media. */
const REMUX_MODES: ReadonlyArray<"native" | "ffmpeg"> = (() => {
  const values = (flags.remux ?? "native").split(",").map((part) => part.trim())
  if (values.some((v) => v !== "native" && v !== "ffmpeg"))
    throw new Error(`--remux must be native and/or ffmpeg separated by commas, got "${flags.remux}"`)
  return values as Array<"native" | "ffmpeg">
})()

// --- the export through capture serve ---------------------------------------------------------

/** One length's figures. */
interface ExportRun {
  readonly minutes: number
  readonly segments: number
  readonly megabytes: number
  /** Every segment but the finals, as fast as the server answered. */
  readonly uploadSeconds: number
  /** From the last of those answers until the muxer's media consumer had nothing pending. */
  readonly catchUpSeconds: number
  /** Recorded seconds the muxer worked through per wall-clock second, first upload → caught up. */
  readonly incrementalSpeed: number
  /** The final segments, then the stop request until its answer (`stopped`). */
  readonly finalsMs: number
  readonly stopAnswerMs: number
  readonly stopAnswerStatus: string
  /** The stored events' times: `SessionStopping` → `SessionStopped` (the stop request finishing the stop). */
  readonly stoppingToStoppedMs: number
  /** The stored events' times: `SessionStopped` → `ExportCompleted`. */
  readonly stoppedToExportedMs: number
  /** The client's stop request sent → `capture_session.exported` on its WebSocket. */
  readonly clientStopToExportedMs: number
  /** Pieces indexed after `SessionStopped`, of all the session's pieces. */
  readonly piecesAfterStop: number
  readonly pieces: number
  /** CPU seconds from create to `exported`. */
  readonly cpu: CpuSeconds
  /** Of which after the final segments were sent. */
  readonly finalizeCpu: CpuSeconds
  readonly validation: Validation
  /** A/V sync of the export in its first and last 20 s (flashes against each tone's beeps). */
  readonly sync: SyncResult
}

const exportThroughServer = async (
  recording: SyntheticRecording,
  remux: "native" | "ffmpeg",
): Promise<ExportRun> => {
  const teardown = new Teardown()
  try {
    const nats = teardown.add("nats-server", await startNatsServer({ kind: "process" }))
    const server = teardown.add(
      "capture serve",
      await startCaptureServer({
        natsUrl: nats.url,
        apiKey: API_KEY,
        // The silence watch stops a session whose recorder sent nothing for a minute; waiting for
        // the muxer before the last segments is a pause no real recorder makes.
        env: { CAPTURE_SILENCE_TIMEOUT_MS: String(2 * CATCH_UP_TIMEOUT_MS), CAPTURE_MUXER_REMUX: remux },
      }),
    )
    const nc = await connect({ servers: nats.url, noAsyncTraces: true })
    teardown.add("nats connection", { stop: () => nc.close() })
    const client = makeJsonClient(server.url, { "x-access-token": API_KEY }, { maxSockets: 2 })
    // One socket per channel: each channel uploads in order, the channels at once.
    const segmentClient = makeSegmentClient(server.url, { "x-access-token": API_KEY }, { maxSockets: 3 })
    teardown.add("clients", {
      stop: async () => {
        client.close()
        segmentClient.close()
      },
    })
    const upload = makeUploader(segmentClient)
    const socket = await openEventSocket(client)
    teardown.add("websocket", { stop: async () => socket.close() })
    const { channels } = recording
    const cpuBefore = cpuNow(server)

    const sessionId = stringField(
      accepted(
        "create",
        await client.send("POST", `/collection/${DEFAULT_COLLECTION}/capture/session`, {
          end_user_id: "bench",
          ws_connection_id: socket.connectionId,
        }),
      ),
      "id",
    )
    accepted(
      "start",
      await client.send("POST", START_SESSION_ROUTE, {
        session_id: sessionId,
        channels: channels.map((c) => ({
          channel_id: c.channelId,
          type: c.type,
          store: true,
          is_primary: c.channelId === "display:1",
        })),
        primary_video_channel_id: "display:1",
      }),
    )
    // The recording started its length ago: its wall-clock timeline ends about now.
    const firstSampleMs = Date.now() - recording.minutes * 60_000

    // Every segment but each channel's last, in order per channel, the channels at once.
    let bytes = 0
    const uploadStarted = performance.now()
    const uploadChannel = async (
      channel: RecordedChannel,
      which: ReadonlyArray<RecordedSegment>,
      final: boolean,
    ) => {
      for (const segment of which) {
        bytes += await upload(sessionId, channel.channelId, segment, firstSampleMs, final)
      }
    }
    await Promise.all(channels.map((c) => uploadChannel(c, c.segments.slice(0, -1), false)))
    const uploadSeconds = (performance.now() - uploadStarted) / 1000

    // A real recorder sends in real time and the muxer keeps up; here it is behind. Its
    // incremental work is done when its media consumer has acknowledged every record.
    const caughtUpStarted = performance.now()
    await muxerCaughtUp(nc, CATCH_UP_TIMEOUT_MS)
    const catchUpSeconds = (performance.now() - caughtUpStarted) / 1000
    const incrementalSpeed = (recording.minutes * 60) / ((performance.now() - uploadStarted) / 1000)
    const quiet = await waitForQuietChildren({ timeoutMs: 10_000 })
    if (!quiet.quiet)
      console.log(`  (servers still busy after ${quiet.waitedMs.toFixed(0)} ms; stopping anyway)`)

    // As the recorder stops: the last segment of each channel (final), then the stop request.
    const cpuAtStop = cpuNow(server)
    const finalsStarted = performance.now()
    await Promise.all(channels.map((c) => uploadChannel(c, c.segments.slice(-1), true)))
    const stopSent = performance.now()
    const exported = socket.next(sessionId, "capture_session.exported", EXPORT_TIMEOUT_MS)
    const stopAnswer = accepted("stop", await client.send("POST", stopSessionPath(sessionId)))
    const stopAnswered = performance.now()
    const seen = await exported
    const cpuAfter = cpuNow(server)

    const store = await EventStore.make(await openTopology(nc))
    const events: Array<SessionEvent> = []
    for await (const { event } of store.read(sessionId)) events.push(event)
    const stopping = events.find((e) => e.type === "SessionStopping")
    const stopped = events.find((e) => e.type === "SessionStopped")
    const completed = events.find((e) => e.type === "ExportCompleted")
    if (stopped === undefined || completed === undefined || completed.type !== "ExportCompleted")
      throw new Error(`unexpected history: ${events.map((e) => e.type).join(", ")}`)
    const { pieces, afterStop } = await countPieces(nc, sessionId, stopped.time)

    const videoId = completed.data.video_id
    const video = accepted(
      "video",
      await client.send("GET", `/collection/${DEFAULT_COLLECTION}/video/${videoId}`),
    )
    const metadata = video.metadata as { duration_ms?: number; gaps?: ReadonlyArray<unknown> } | undefined
    const checked = await validate(stringField(video, "download_url"), recording.minutes)
    const gaps = metadata?.gaps?.length ?? 0
    const validation: Validation = {
      ...checked,
      ...(gaps > 0 ? { ok: false, problems: [...checked.problems, `${gaps} gaps in the metadata`] } : {}),
      ...(metadata?.duration_ms === undefined ? {} : { metadataDurationMs: metadata.duration_ms }),
      gaps,
    }
    const sync = await measureExportSync(
      stringField(video, "download_url"),
      checked.durationSeconds,
      recording,
    )
    return {
      minutes: recording.minutes,
      segments: channels.reduce((n, c) => n + c.segments.length, 0),
      megabytes: bytes / 1e6,
      uploadSeconds,
      catchUpSeconds,
      incrementalSpeed,
      finalsMs: stopSent - finalsStarted,
      stopAnswerMs: stopAnswered - stopSent,
      stopAnswerStatus: String(stopAnswer.status),
      stoppingToStoppedMs: stopping === undefined ? 0 : Date.parse(stopped.time) - Date.parse(stopping.time),
      stoppedToExportedMs: Date.parse(completed.time) - Date.parse(stopped.time),
      clientStopToExportedMs: seen.at - stopSent,
      piecesAfterStop: afterStop,
      pieces,
      cpu: cpuSince(cpuBefore, cpuAfter),
      finalizeCpu: cpuSince(cpuAtStop, cpuAfter),
      validation,
      sync,
    }
  } finally {
    await teardown.run()
  }
}

// --- the run ------------------------------------------------------------------------------------

interface Row {
  readonly recording: Omit<SyntheticRecording, "channels">
  readonly remux: "native" | "ffmpeg"
  readonly export: ExportRun
  readonly oneShot: OneShot
  /** stopped → exported (events) / one-shot wall time. */
  readonly ratio: number
}

const fixed = (value: number, digits: number) => value.toFixed(digits)

type Column = readonly [title: string, width: number, cell: (row: Row) => string]

const printTable = (title: string, rows: ReadonlyArray<Row>, columns: ReadonlyArray<Column>) => {
  console.log(`\n${title}`)
  console.log(columns.map(([heading, width]) => heading.padStart(width)).join(""))
  for (const row of rows) console.log(columns.map(([, width, cell]) => cell(row).padStart(width)).join(""))
}

const rowValid = (r: Row) => r.export.validation.ok && r.export.sync.ok && r.oneShot.validation.ok

/** Per tone (mic, then system audio): max |error| in the first window / in the last. */
const syncCell = (sync: SyncResult) =>
  sync.start.tones
    .map(
      (tone, i) =>
        `${fixed(tone.maxAbsErrorMs, 0)}/${fixed(sync.end.tones[i]?.maxAbsErrorMs ?? Number.NaN, 0)}`,
    )
    .join(" ")

const printRows = (rows: ReadonlyArray<Row>) => {
  printTable(
    "Export after stop, beside a one-shot ffmpeg mux of the same media (ratio: export / one-shot; " +
      "sync: max |A/V error| in the export's first / last 20 s, mic then system audio)",
    rows,
    [
      ["minutes", 8, (r) => String(r.recording.minutes)],
      ["remux", 7, (r) => r.remux],
      ["segments", 9, (r) => String(r.export.segments)],
      ["MB", 6, (r) => fixed(r.export.megabytes, 0)],
      ["upload s", 9, (r) => fixed(r.export.uploadSeconds, 1)],
      ["catch-up s", 11, (r) => fixed(r.export.catchUpSeconds, 1)],
      ["stop answer ms", 15, (r) => fixed(r.export.stopAnswerMs, 0)],
      ["stopped→exported ms", 20, (r) => fixed(r.export.stoppedToExportedMs, 0)],
      ["client ms", 10, (r) => fixed(r.export.clientStopToExportedMs, 0)],
      ["one-shot s", 11, (r) => fixed(r.oneShot.seconds, 2)],
      ["ratio", 8, (r) => `${fixed(r.ratio, 3)}x`],
      ["sync start / end ms", 20, (r) => syncCell(r.export.sync)],
      ["valid", 6, (r) => (rowValid(r) ? "yes" : "NO")],
    ],
  )
  const per = (r: Row, seconds: number) => fixed(seconds / r.recording.minutes, 2)
  printTable("CPU seconds per recorded minute, create → exported (60 = one core busy in real time)", rows, [
    ["minutes", 8, (r) => String(r.recording.minutes)],
    ["remux", 7, (r) => r.remux],
    ["serve", 8, (r) => per(r, r.export.cpu.serve)],
    ["its ffmpeg", 11, (r) => per(r, r.export.cpu.ffmpeg)],
    ["nats-server", 12, (r) => per(r, r.export.cpu.nats)],
    ["total", 8, (r) => per(r, r.export.cpu.total)],
    ["after stop", 11, (r) => per(r, r.export.finalizeCpu.total)],
    ["one-shot", 10, (r) => per(r, r.oneShot.cpuSeconds)],
    ["total vs one-shot", 18, (r) => `${fixed(r.export.cpu.total / r.oneShot.cpuSeconds, 1)}x`],
  ])
  for (const r of rows) {
    if (r.remux !== "native") continue
    const old = rows.find((o) => o.remux === "ffmpeg" && o.recording.minutes === r.recording.minutes)
    if (old === undefined) continue
    const ratio = (a: number, b: number) => `${fixed(a / b, 2)}x`
    console.log(
      `${r.recording.minutes} min, native vs ffmpeg remux (same run): total CPU ${ratio(r.export.cpu.total, old.export.cpu.total)}, ` +
        `ffmpeg runs ${ratio(r.export.cpu.ffmpeg, old.export.cpu.ffmpeg)}, serve ${ratio(r.export.cpu.serve, old.export.cpu.serve)}, ` +
        `stopped → exported ${fixed(r.export.stoppedToExportedMs, 0)} vs ${fixed(old.export.stoppedToExportedMs, 0)} ms`,
    )
  }
  for (const { recording, export: e, oneShot } of rows) {
    const problems = [
      ...e.validation.problems.map((p) => `export: ${p}`),
      ...e.sync.problems.map((p) => `export sync: ${p}`),
      ...oneShot.validation.problems.map((p) => `one-shot: ${p}`),
    ]
    if (problems.length > 0) console.log(`${recording.minutes} min INVALID: ${problems.join("; ")}`)
  }
}

const main = async () => {
  const runStarted = performance.now()
  const teardown = new Teardown()
  teardown.add("ffmpeg generating media", { stop: async () => killGenerators() })
  try {
    await run(runStarted)
  } finally {
    await teardown.run()
  }
}

const run = async (runStarted: number) => {
  const loadBefore = loadavg()
  console.log(
    `recordings: display:1 ${VIDEO.width}x${VIDEO.height} ${VIDEO.frameRate} fps H.264 (the recorder's veryfast/zerolatency), ` +
      "mic:default 440 Hz + system_audio:default 660 Hz AAC, 2 s MPEG-TS segments",
  )
  console.log(`cache: ${recordingCacheDir()} (set CAPTURE_BENCH_CACHE to move it)`)
  const recordings: Array<SyntheticRecording> = []
  for (const minutes of LENGTHS) {
    console.log(`${minutes} min: generating or loading…`)
    const recording = await syntheticRecording({
      minutes,
      ...VIDEO,
      ffmpeg,
      progress: (line) => console.log(line),
    })
    console.log(
      `${minutes} min: ${recording.generated ? `generated in ${recording.seconds.toFixed(0)} s` : "cached"} at ${recording.directory}`,
    )
    recordings.push(recording)
  }

  const rows: Array<Row> = []
  for (const recording of recordings) {
    const exports: Array<{ remux: "native" | "ffmpeg"; exported: ExportRun }> = []
    for (const remux of REMUX_MODES) {
      console.log(`\n${recording.minutes} min: uploading through capture serve (remux ${remux})…`)
      const exported = await exportThroughServer(recording, remux)
      exports.push({ remux, exported })
      console.log(
        `${recording.minutes} min: upload ${exported.uploadSeconds.toFixed(1)} s, muxer caught up ${exported.catchUpSeconds.toFixed(1)} s later, ` +
          `stopped → exported ${exported.stoppedToExportedMs} ms (client ${exported.clientStopToExportedMs.toFixed(0)} ms), ` +
          `${exported.piecesAfterStop} of ${exported.pieces} pieces made after stop`,
      )
      const describe = (w: SyncResult["start"]) =>
        `${w.flashes} flashes (phase ${w.flashPhaseMs.toFixed(0)} ms), ` +
        w.tones
          .map(
            (t) =>
              `${t.channelId} max ${t.maxAbsErrorMs.toFixed(1)} ms mean ${t.meanErrorMs.toFixed(1)} ms over ${t.matched}`,
          )
          .join(", ")
      console.log(
        `${recording.minutes} min: sync first ${exported.sync.start.seconds} s: ${describe(exported.sync.start)}`,
      )
      console.log(
        `${recording.minutes} min: sync from ${exported.sync.end.from.toFixed(1)} s: ${describe(exported.sync.end)}`,
      )
      await waitForQuietChildren({ timeoutMs: 10_000 })
    }
    const oneShot = await oneShotMux(recording)
    console.log(`${recording.minutes} min: one-shot mux ${oneShot.seconds.toFixed(2)} s`)
    const { channels: _, ...described } = recording
    for (const { remux, exported } of exports)
      rows.push({
        recording: described,
        remux,
        export: exported,
        oneShot,
        ratio: exported.stoppedToExportedMs / 1000 / oneShot.seconds,
      })
  }

  printRows(rows)
  const loadAfter = loadavg()
  console.log(
    `\nload average before/after: ${loadBefore.map((l) => l.toFixed(1)).join(" ")} / ${loadAfter.map((l) => l.toFixed(1)).join(" ")} (2 cores, shared with other work)`,
  )
  const file = writeResults("export", {
    at: new Date().toISOString(),
    node: process.version,
    ffmpeg,
    server: "capture serve child process (all-in-one: gateway + muxer), nats-server child process",
    video: VIDEO,
    quick,
    lengths: LENGTHS,
    remux: REMUX_MODES,
    rows,
    loadavg: { before: loadBefore, after: loadAfter },
    seconds: (performance.now() - runStarted) / 1000,
  })
  console.log(`results: ${file}`)
  if (rows.some((r) => !rowValid(r))) process.exitCode = 1
}

await main()
