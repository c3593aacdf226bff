/**
 * bench:index — what the indexes cost: the visual index's CPU per display-minute beside the OCR
 * engine run directly on the same frames, and search over 1,000,000 indexed shots beside SQLite
 * FTS5's own query on the same table, each in the same run.
 *
 * Visual index. A 1280x720 screen of text (testkit's screenRecording: lines drawn with ffmpeg on
 * white, H.264 MPEG-TS segments of 2 s at 30 fps as the recorder encodes a display) whose text
 * changes every `--change-seconds`. Then:
 *
 * - components alone: the segments decoded as the pipeline decodes them (ffmpeg, grey frames at
 *   the default batch's 2.5 fps), the change detector's thumbnails, and tesseract (the pipeline's
 *   own TesseractReader) on the frames the change detector picks; and what tesseract on every
 *   sampled frame would cost (no change detector: its mean per frame times the frames);
 * - pipeline: a nats-server child, `capture serve --role gateway` and `capture serve --role ai`
 *   children; a session with a display, a visual index at the default batch (`{time: 2,
 *   frame_count: 5}`), the segments PUT in real time; the AI worker's CPU (node, its ffmpeg and
 *   tesseract children) from the index's creation to the last scene stored.
 *
 * Search. `--rows` shots of synthetic text (words drawn from a vocabulary with a Zipf law, spread
 * over 10 accounts) inserted through SearchIndex's own insert path (`apply`, as the projection
 * does), in a file; then the same `--queries` queries (one to three words) through
 * `SearchIndex.search` (the account's shots, best 50) and through better-sqlite3 on the same
 * file with FTS5's own query (`MATCH … ORDER BY bm25 LIMIT 50`, no scope).
 *
 * Targets (issue 13): the visual index ≤ 5 % of a core; search ≥ 0.5× FTS5's own queries/s.
 *
 *   pnpm bench:index [--minutes 1] [--change-seconds 10] [--rows 1000000] [--queries 2000] [--skip-visual] [--skip-search] [--profile-worker <dir>]
 */
import { createHash } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import {
  DisplayDecoder,
  decodeFrames,
  ftsQueryOf,
  type GreyFrame,
  SearchIndex,
  screenChanged,
  TesseractEngine,
  TesseractReader,
  tesseractAvailable,
  thumbnailOf,
  toPgm,
} from "@capture/ai"
import type { AiEvent, CollectionId, RtstreamId, SceneIndexId, SessionId } from "@capture/protocol"
import { resolveFfmpeg } from "@capture/recorder/Ffmpeg"
import { type ScreenRecording, screenRecording, startNatsServer } from "@capture/testkit"
import Database from "better-sqlite3"
import { startCaptureServer } from "./lib/captureServer.js"
import { positiveInteger } from "./lib/flags.js"
import { accepted, makeJsonClient, stringField } from "./lib/jsonClient.js"
import { reapedChildrenCpuMs, treeCpuMs } from "./lib/processCpu.js"
import { writeResults } from "./lib/stats.js"
import { Teardown } from "./lib/teardown.js"

const API_KEY = "sk-bench-index-key"
const SEGMENT_SECONDS = 2
/** The default batch (docs/ai.md): 5 frames per 2 s scene, decoded at 2.5 fps. */
const BATCH = { time: 2, frame_count: 5 }
const FPS = BATCH.frame_count / BATCH.time
/** How long the AI worker's idle CPU is measured before the index starts. */
const IDLE_MS = 20_000
const IDLE_SETTLE_MS = 5_000
const { values: flags } = parseArgs({
  options: {
    minutes: { type: "string", default: "1" },
    "change-seconds": { type: "string", default: "10" },
    rows: { type: "string", default: "1000000" },
    queries: { type: "string", default: "2000" },
    "skip-visual": { type: "boolean", default: false },
    "skip-search": { type: "boolean", default: false },
    /** Write the AI worker's CPU profile (`node --cpu-prof`) into this directory. */
    "profile-worker": { type: "string" },
    /** Keep the search index in this file (kept after the run; inserted only when empty). */
    db: { type: "string" },
  },
})
const minutes = positiveInteger("minutes", flags.minutes, 1)
const changeSeconds = positiveInteger("change-seconds", flags["change-seconds"], 10)
const rowCount = positiveInteger("rows", flags.rows, 1_000_000)
const queryCount = positiveInteger("queries", flags.queries, 2_000)

const percentile = (values: ReadonlyArray<number>, p: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN)
}
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
const ownCpuMs = () => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}

/** A deterministic pseudo-random source (mulberry32), so every run indexes and asks the same. */
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** Words of a workplace screen or conversation. */
const VOCABULARY = (
  "budget review quarterly sales invoice overdue reminder meeting thursday friday report team " +
  "project deadline customer support ticket release notes pull request merge conflict deploy " +
  "production staging database migration schedule calendar invite slack channel general random " +
  "design mockup feedback roadmap planning sprint retrospective standup hiring interview candidate " +
  "offer contract legal compliance security audit password rotation incident postmortem outage " +
  "latency dashboard metrics revenue forecast pipeline marketing campaign launch pricing discount " +
  "renewal churn onboarding training documentation wiki search spreadsheet presentation slides " +
  "agenda minutes action items follow owner priority blocker estimate velocity backlog epic story " +
  "bug crash regression test coverage build failure warning error timeout retry cache memory disk " +
  "network router firewall vendor partner integration webhook token account billing payment refund"
).split(" ")

/** A Zipf-distributed word picker over VOCABULARY plus rarer generated words (`w<n>`). */
const zipfWords = (rng: () => number, extra: number) => {
  const words = [...VOCABULARY, ...Array.from({ length: extra }, (_, i) => `w${i.toString(36)}`)]
  const weights = words.map((_, rank) => 1 / (rank + 1))
  const cumulative: Array<number> = []
  let sum = 0
  for (const w of weights) {
    sum += w
    cumulative.push(sum)
  }
  return () => {
    const target = rng() * sum
    let lo = 0
    let hi = cumulative.length - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((cumulative[mid] ?? 0) < target) lo = mid + 1
      else hi = mid
    }
    return words[lo] ?? "budget"
  }
}

// ---------------------------------------------------------------------------------------------
// Visual index

/** Screens of a window title and six lines of text, each shown for `changeSeconds`. */
const screensFor = (totalSeconds: number) => {
  const rng = random(7)
  const word = () => VOCABULARY[Math.floor(rng() * VOCABULARY.length)] ?? "budget"
  const line = (n: number) => Array.from({ length: n }, word).join(" ")
  const screens: Array<{ lines: Array<string>; seconds: number }> = []
  for (let at = 0; at < totalSeconds; at += changeSeconds) {
    const seconds = Math.min(changeSeconds, totalSeconds - at)
    screens.push({
      lines: [`${line(3)} - Capture Mail`, ...Array.from({ length: 6 }, () => line(6))],
      seconds,
    })
  }
  return screens
}

interface ComponentsAlone {
  readonly frames: number
  readonly reads: number
  /** One ffmpeg per segment (what the pipeline falls back to). */
  readonly decodeCpuMs: number
  /** One long-lived ffmpeg fed the segments in order (the pipeline's DisplayDecoder). */
  readonly streamDecodeCpuMs: number
  readonly thumbnailCpuMs: number
  /** The tesseract CLI (the OCR engine run directly), one process a read. */
  readonly ocrCpuMs: number
  /** tesseract's mean CPU per frame read (the CLI). */
  readonly ocrPerFrameMs: number
  /** The same reads by the pipeline's TesseractEngine (tesseract kept loaded), its load apart. */
  readonly engineCpuMs: number
  /** The engine's process start and model load, once per worker. */
  readonly engineStartCpuMs: number
}

/** Decoding, the change detector and OCR of the frames it picks, each on its own, in this process. */
const componentsAlone = async (ffmpeg: string, recording: ScreenRecording): Promise<ComponentsAlone> => {
  const segments = recording.segments.slice(1)
  let before = reapedChildrenCpuMs(process.pid)
  const decoded: Array<Array<GreyFrame>> = []
  for (const segment of segments) decoded.push(await decodeFrames(ffmpeg, segment.bytes, FPS))
  const decodeCpuMs = reapedChildrenCpuMs(process.pid) - before
  before = reapedChildrenCpuMs(process.pid)
  const decoder = new DisplayDecoder(ffmpeg, FPS)
  const streamed: Array<Array<GreyFrame>> = []
  for (const [position, segment] of segments.entries()) {
    const frames = await decoder.decode(position + 1, segment.bytes)
    if (frames === undefined) throw new Error(`the display decoder gave up at segment ${position + 1}`)
    streamed.push(frames)
  }
  await decoder.close()
  const streamDecodeCpuMs = reapedChildrenCpuMs(process.pid) - before
  // The pipeline reads the decoder's frames: those go on to the change detector.
  const frames = streamed.flat()
  if (frames.length !== decoded.flat().length) {
    throw new Error(
      `the display decoder gave ${frames.length} frames, ffmpeg per segment ${decoded.flat().length}`,
    )
  }
  const ownBefore = ownCpuMs()
  const picked: Array<GreyFrame> = []
  let last: Uint8Array | null = null
  for (const frame of frames) {
    const thumb = thumbnailOf(frame)
    if (screenChanged(last, thumb)) {
      picked.push(frame)
      last = thumb
    }
  }
  const thumbnailCpuMs = ownCpuMs() - ownBefore
  const reader = new TesseractReader()
  before = reapedChildrenCpuMs(process.pid)
  for (const frame of picked) await reader.read(toPgm(frame))
  const ocrCpuMs = reapedChildrenCpuMs(process.pid) - before
  const engine = new TesseractEngine()
  if ((await engine.engine()) !== "library")
    throw new Error("libtesseract did not load: the engine reads with the CLI")
  const loaded = treeCpuMs(engine.pid as number)
  for (const frame of picked) await engine.read(toPgm(frame))
  const engineCpuMs = treeCpuMs(engine.pid as number) - loaded
  await engine.close()
  return {
    engineCpuMs,
    engineStartCpuMs: loaded,
    frames: frames.length,
    reads: picked.length,
    decodeCpuMs,
    streamDecodeCpuMs,
    thumbnailCpuMs,
    ocrCpuMs,
    ocrPerFrameMs: picked.length === 0 ? 0 : ocrCpuMs / picked.length,
  }
}

interface PipelineRun {
  readonly cpuMs: number
  readonly wallMs: number
  readonly gatewayCpuMs: number
  /** The AI worker's CPU per ms while idle (the session open, no index yet): what it costs anyway. */
  readonly idleCpuPerMs: number
  /** Scenes stored (each 2 s of display): what the CPU figure is divided by. */
  readonly scenes: number
  /** Scenes whose text holds the words of the screen shown then (at least 60 % of them). */
  readonly scenesRead: number
  /** The share of the words on screen found in the text of the scenes that showed them. */
  readonly wordRecall: number
}

const pipeline = async (natsUrl: string, recording: ScreenRecording): Promise<PipelineRun> => {
  const teardown = new Teardown()
  try {
    const gateway = teardown.add(
      "gateway",
      await startCaptureServer({
        natsUrl,
        apiKey: API_KEY,
        args: ["--role", "gateway"],
        readyTimeoutMs: 120_000,
      }),
    )
    const worker = teardown.add(
      "ai worker",
      await startCaptureServer({
        natsUrl,
        apiKey: API_KEY,
        args: ["--role", "ai"],
        ...(flags["profile-worker"] === undefined
          ? {}
          : { nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${flags["profile-worker"]}`] }),
        readyPath: "/healthz",
        readyTimeoutMs: 120_000,
      }),
    )
    const client = makeJsonClient(gateway.url, { "x-access-token": API_KEY }, { maxSockets: 4 })
    teardown.add("client", { stop: async () => client.close() })
    // The worker's own cost with nothing to index (consumers, heartbeats), before the session starts
    // and once its start (tesseract's load among it) is over.
    await sleep(IDLE_SETTLE_MS)
    const idleBefore = treeCpuMs(worker.pid)
    const idleFrom = Date.now()
    await sleep(IDLE_MS)
    const idleCpuPerMs = (treeCpuMs(worker.pid) - idleBefore) / (Date.now() - idleFrom)
    const sessionId = stringField(
      accepted(
        "create",
        await client.send("POST", "/collection/default/capture/session", { end_user_id: "bench-index" }),
      ),
      "id",
    )
    accepted(
      "start",
      await client.send("POST", "/capture/session/start", {
        session_id: sessionId,
        channels: [{ channel_id: "display:1" }],
      }),
    )
    const put = async (index: number, startMs: number) => {
      const segment = recording.segments[index]
      if (segment === undefined) return
      const response = await fetch(
        `${gateway.url}/capture/session/${sessionId}/channels/display%3A1/segments/${index}`,
        {
          method: "PUT",
          headers: {
            "x-access-token": API_KEY,
            "content-type": "video/mp2t",
            "x-segment-start-ms": String(startMs + segment.offsetMs),
            "x-segment-duration-ms": String(segment.durationMs),
            "x-segment-sha256": createHash("sha256").update(segment.bytes).digest("hex"),
            ...(index === recording.segments.length - 1 ? { "x-segment-final": "1" } : {}),
          },
          body: segment.bytes,
        },
      )
      if (!response.ok) throw new Error(`segment ${index}: ${response.status} ${await response.text()}`)
    }
    const startMs = Date.now() - (recording.segments[0]?.durationMs ?? 2_000)
    await put(0, startMs)
    let rtstreamId = ""
    for (let i = 0; rtstreamId === ""; i++) {
      const view = accepted(
        "session",
        await client.send("GET", `/collection/default/capture/session/${sessionId}`),
      )
      rtstreamId = (view.rtstreams as ReadonlyArray<{ rtstream_id: string }>)[0]?.rtstream_id ?? ""
      if (rtstreamId === "") {
        if (i > 200) throw new Error("the session never got its rtstream")
        await sleep(50)
      }
    }
    const cpuBefore = treeCpuMs(worker.pid)
    const gatewayBefore = treeCpuMs(gateway.pid)
    const startedAt = Date.now()
    const indexId = stringField(
      accepted(
        "index",
        await client.send("POST", `/rtstream/${rtstreamId}/index/scene`, {
          extraction_type: "time_based",
          extraction_config: BATCH,
          name: "bench screen",
        }),
      ),
      "rtstream_index_id",
    )
    for (let index = 1; index < recording.segments.length; index++) {
      const segment = recording.segments[index]
      if (segment === undefined) break
      const due = startMs + segment.offsetMs + segment.durationMs
      await sleep(Math.max(0, due - Date.now()))
      await put(index, startMs)
    }
    // Each segment after 0 is one scene of 2 s; done once the last one is stored.
    const expected = recording.segments.length - 1
    type Scene = { start: number; end: number; text: string }
    let scenes: ReadonlyArray<Scene> = []
    const deadline = Date.now() + 600_000
    while (Date.now() < deadline) {
      scenes = accepted(
        "scenes",
        await client.send("GET", `/rtstream/${rtstreamId}/index/scene/${indexId}?page_size=1000`),
      ).scene_index_records as ReadonlyArray<Scene>
      if (scenes.length >= expected) break
      await sleep(250)
    }
    const wallMs = Date.now() - startedAt
    const cpu = treeCpuMs(worker.pid) - cpuBefore
    const gatewayCpu = treeCpuMs(gateway.pid) - gatewayBefore
    if (scenes.length < expected) {
      console.log(`  only ${scenes.length} of ${expected} scenes were stored: the figures count those`)
    }
    const words = (text: string) => new Set(text.toLowerCase().match(/[a-z]+/g) ?? [])
    let wordsShown = 0
    let wordsFound = 0
    const scenesRead = scenes.filter((scene) => {
      const shown = recording.screens.find((s) => scene.start * 1000 - startMs < s.endMs)
      if (shown === undefined) return false
      const expectedWords = [...words(shown.lines.join(" "))]
      const read = words(scene.text)
      const found = expectedWords.filter((w) => read.has(w)).length
      wordsShown += expectedWords.length
      wordsFound += found
      return found >= 0.6 * expectedWords.length
    }).length
    const wordRecall = wordsShown === 0 ? 0 : wordsFound / wordsShown
    return {
      cpuMs: cpu,
      wallMs,
      gatewayCpuMs: gatewayCpu,
      idleCpuPerMs,
      scenes: scenes.length,
      scenesRead,
      wordRecall,
    }
  } finally {
    await teardown.run()
  }
}

const visualBench = async () => {
  if (!tesseractAvailable()) throw new Error("bench:index needs tesseract (bash scripts/bootstrap.sh)")
  const ffmpeg = resolveFfmpeg()
  // Segment 0 (before the index starts) and `minutes` of display after it.
  const totalSeconds = minutes * 60 + SEGMENT_SECONDS
  const recording = await screenRecording(ffmpeg, screensFor(totalSeconds), {
    width: 1280,
    height: 720,
    fps: 30,
    segmentSeconds: SEGMENT_SECONDS,
  })
  const displayMinutes = (recording.durationMs - SEGMENT_SECONDS * 1000) / 60_000
  console.log(
    `\nvisual index: 1280x720 at 30 fps, text changing every ${changeSeconds} s, ${displayMinutes.toFixed(2)} display-minutes (${recording.segments.length - 1} segments of ${SEGMENT_SECONDS} s), batch {time: ${BATCH.time}, frame_count: ${BATCH.frame_count}}, load ${loadavg()[0]?.toFixed(1)}`,
  )
  const alone = await componentsAlone(ffmpeg, recording)
  console.log(
    `components alone: ${alone.frames} frames sampled, ${alone.reads} read; decode ${(alone.decodeCpuMs / 1000).toFixed(2)} CPU s (one ffmpeg a lane: ${(alone.streamDecodeCpuMs / 1000).toFixed(2)}), thumbnails ${(alone.thumbnailCpuMs / 1000).toFixed(2)}, tesseract CLI ${(alone.ocrCpuMs / 1000).toFixed(2)} (${alone.ocrPerFrameMs.toFixed(0)} ms a frame), kept loaded ${(alone.engineCpuMs / 1000).toFixed(2)} (+ ${(alone.engineStartCpuMs / 1000).toFixed(2)} to load it once)`,
  )
  const nats = await startNatsServer({ kind: "process" })
  let run: PipelineRun
  try {
    run = await pipeline(nats.url, recording)
  } finally {
    await nats.stop()
  }
  const perMinute = (ms: number, minutes = displayMinutes) => ms / 1000 / minutes
  const share = (ms: number, minutes = displayMinutes) =>
    `${((perMinute(ms, minutes) / 60) * 100).toFixed(2)} %`
  // The pipeline's CPU over the display it indexed (all of it, unless it fell behind).
  const pipelineMinutes = Math.min(displayMinutes, (run.scenes * BATCH.time) / 60)
  const everyFrameMs = alone.ocrPerFrameMs * alone.frames
  const rows: Array<[string, number, number?]> = [
    [`tesseract on every sampled frame (${alone.frames}; estimated)`, everyFrameMs],
    [`tesseract CLI on the frames the detector picks (${alone.reads})`, alone.ocrCpuMs],
    [`tesseract kept loaded on the same frames (used)`, alone.engineCpuMs],
    [`ffmpeg decode to ${FPS} fps grey, one ffmpeg a segment`, alone.decodeCpuMs],
    [`ffmpeg decode to ${FPS} fps grey, one ffmpeg a lane (used)`, alone.streamDecodeCpuMs],
    ["change detector thumbnails (node)", alone.thumbnailCpuMs],
    ["components together (as used)", alone.engineCpuMs + alone.streamDecodeCpuMs + alone.thumbnailCpuMs],
    ["pipeline: AI worker (node + ffmpeg + tesseract)", run.cpuMs, pipelineMinutes],
    ["  of which the worker idle (no index; same wall time)", run.idleCpuPerMs * run.wallMs, pipelineMinutes],
    ["  pipeline above the idle worker", run.cpuMs - run.idleCpuPerMs * run.wallMs, pipelineMinutes],
  ]
  console.log(
    `\n${"".padEnd(58)}${"CPU s".padStart(8)}${"CPU s / display-min".padStart(21)}${"of a core".padStart(11)}`,
  )
  for (const [name, ms, minutes] of rows) {
    console.log(
      `${name.padEnd(58)}${(ms / 1000).toFixed(2).padStart(8)}${perMinute(ms, minutes).toFixed(2).padStart(21)}${share(ms, minutes).padStart(11)}`,
    )
  }
  const pipelinePerMinute = perMinute(run.cpuMs, pipelineMinutes)
  console.log(
    `\npipeline vs tesseract CLI on the same reads: ${(pipelinePerMinute / perMinute(alone.ocrCpuMs)).toFixed(2)}x; vs tesseract kept loaded on them: ${(pipelinePerMinute / perMinute(alone.engineCpuMs)).toFixed(2)}x; vs tesseract on every sampled frame: ${(pipelinePerMinute / perMinute(everyFrameMs)).toFixed(3)}x (per display-minute)`,
  )
  console.log(
    `pipeline: ${share(run.cpuMs, pipelineMinutes)} of a core (target ≤ 5 %); ${run.scenes} scenes, ${run.scenesRead} holding the words on screen, word recall ${(run.wordRecall * 100).toFixed(1)} %; gateway ${(run.gatewayCpuMs / 1000).toFixed(2)} CPU s; ${(run.wallMs / 1000).toFixed(1)} s wall`,
  )
  return { displayMinutes, pipelineMinutes, changeSeconds, alone, everyFrameMs, pipeline: run }
}

// ---------------------------------------------------------------------------------------------
// Search

const ACCOUNTS = 10
const RTSTREAMS_PER_ACCOUNT = 50

/** The SceneIndexed (visual) or final TranscriptProduced event of shot `n`, with `text`. */
const shotEvent = (n: number, text: string): AiEvent => {
  const account = n % ACCOUNTS
  const rtstream = Math.floor(n / ACCOUNTS) % RTSTREAMS_PER_ACCOUNT
  const rtstreamId =
    `rts-${String(account).padStart(2, "0")}${String(rtstream).padStart(24, "0")}` as RtstreamId
  const routing = {
    account_id: `acct-${account}`,
    end_user_id: `user-${rtstream % 5}`,
    collection_id: "default" as CollectionId,
    ws_connection_id: null,
    rtstream_name: n % 2 === 0 ? "display:1" : "mic:default",
  }
  const envelope = {
    rtstream_id: rtstreamId,
    session_id: `cs-${String(account).padStart(2, "0")}${String(rtstream).padStart(24, "0")}` as SessionId,
    time: new Date(0).toISOString(),
  }
  const start = 1_700_000_000_000 + n * 2_000
  return n % 2 === 0
    ? {
        type: "SceneIndexed",
        id: `${rtstreamId}/index/rsi-bench/scene/${n}`,
        ...envelope,
        channel_id: "display:1",
        data: {
          index_id: "rsi-bench" as SceneIndexId,
          kind: "visual",
          index_name: "screen",
          scene: n,
          text,
          start,
          end: start + 2_000,
          engine: "local",
          routing,
        },
      }
    : {
        type: "TranscriptProduced",
        id: `${rtstreamId}/u/${n}`,
        ...envelope,
        channel_id: "mic:default",
        data: {
          text,
          is_final: true,
          start,
          end: start + 2_000,
          utterance: n,
          segment_index: n,
          engine: "local",
          routing,
        },
      }
}

const searchBench = async () => {
  const dir = mkdtempSync(join(tmpdir(), "capture-bench-search-"))
  const file = flags.db ?? join(dir, "search.db")
  const index = SearchIndex.open(file)
  const reuse = index.streamSequence >= rowCount
  try {
    const rng = random(42)
    const pick = zipfWords(rng, 20_000)
    console.log(
      `\nsearch: ${rowCount.toLocaleString("en")} shots (${ACCOUNTS} accounts), words of a ${VOCABULARY.length}-word vocabulary + 20,000 rarer ones (Zipf), load ${loadavg()[0]?.toFixed(1)}`,
    )
    const insertStarted = performance.now()
    const BATCH_ROWS = 10_000
    for (let from = 0; from < (reuse ? 0 : rowCount); from += BATCH_ROWS) {
      const batch: Array<{ event: AiEvent; streamSequence: number }> = []
      for (let n = from; n < Math.min(rowCount, from + BATCH_ROWS); n++) {
        const length = 6 + Math.floor(rng() * 20)
        batch.push({ event: shotEvent(n, Array.from({ length }, pick).join(" ")), streamSequence: n + 1 })
      }
      index.apply(batch)
    }
    const insertSeconds = (performance.now() - insertStarted) / 1000
    if (reuse) {
      // The same generator, run for the queries' words only: the rows are in the file already.
      for (let n = 0; n < rowCount; n++) {
        for (let i = 6 + Math.floor(rng() * 20); i > 0; i--) pick()
      }
      console.log(`reusing ${file}`)
    } else {
      console.log(
        `inserted through SearchIndex.apply in ${insertSeconds.toFixed(1)} s (${(rowCount / insertSeconds).toFixed(0)} shots/s)`,
      )
    }
    // Queries of one to three words; the account of each is drawn too.
    const queries = Array.from({ length: queryCount }, () => ({
      text: Array.from({ length: 1 + Math.floor(rng() * 3) }, pick).join(" "),
      account: `acct-${Math.floor(rng() * ACCOUNTS)}`,
    }))
    const raw = new Database(file, { readonly: true })
    const own = raw.prepare(
      "SELECT rowid, bm25(shots_text) AS rank FROM shots_text WHERE shots_text MATCH ? ORDER BY bm25(shots_text) LIMIT 50",
    )
    const timed = (name: string, run: (q: { text: string; account: string }) => number) => {
      // A warm-up pass over a tenth, so both read from a warm page cache.
      for (const q of queries.slice(0, Math.ceil(queries.length / 10))) run(q)
      const latencies: Array<number> = []
      let hits = 0
      const started = performance.now()
      for (const q of queries) {
        const t0 = performance.now()
        hits += run(q)
        latencies.push(performance.now() - t0)
      }
      const seconds = (performance.now() - started) / 1000
      return {
        name,
        queries: queries.length,
        perSecond: queries.length / seconds,
        p50Ms: percentile(latencies, 50),
        p99Ms: percentile(latencies, 99),
        meanHits: hits / queries.length,
      }
    }
    const engine = timed(
      "FTS5's own query (MATCH, bm25, LIMIT 50)",
      (q) => own.all(ftsQueryOf(q.text)).length,
    )
    const ours = timed(
      "SearchIndex.search (account, best 50)",
      (q) => index.search({ query: q.text, account_id: q.account, limit: 50 }).length,
    )
    raw.close()
    console.log(
      `\n${"".padEnd(46)}${"queries/s".padStart(11)}${"p50 ms".padStart(9)}${"p99 ms".padStart(9)}${"hits".padStart(7)}${"vs FTS5".padStart(10)}`,
    )
    for (const figure of [engine, ours]) {
      console.log(
        `${figure.name.padEnd(46)}${figure.perSecond.toFixed(figure.perSecond < 10 ? 2 : 0).padStart(11)}${figure.p50Ms.toFixed(2).padStart(9)}${figure.p99Ms.toFixed(2).padStart(9)}${figure.meanHits.toFixed(1).padStart(7)}${`${(figure.perSecond / engine.perSecond).toFixed(2)}x`.padStart(10)}`,
      )
    }
    console.log(
      `search: ${(ours.perSecond / engine.perSecond).toFixed(2)}x FTS5's own queries/s (target ≥ 0.5x)`,
    )
    return { rows: rowCount, insertSeconds, engine, ours }
  } finally {
    index.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

const main = async () => {
  const loadBefore = loadavg()
  const visual = flags["skip-visual"] ? undefined : await visualBench()
  const search = flags["skip-search"] ? undefined : await searchBench()
  const file = writeResults("index", {
    date: new Date().toISOString(),
    load: { before: loadBefore, after: loadavg() },
    targets: { visualCoreShare: 0.05, searchRatio: 0.5 },
    visual,
    search,
  })
  console.log(`\nwrote ${file}`)
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  },
)
