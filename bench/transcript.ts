/**
 * bench:transcript — the AI pipeline's cost and latency with the local engine, beside the engine
 * called directly on the same audio in the same run.
 *
 * A fixed set of sentences (testkit's SPEECH_SENTENCES, Festival's slt HTS voice, 1.5 s pauses) is
 * recorded once and cut into 2 s AAC MPEG-TS segments as the recorder cuts a mic. Then:
 *
 * - engine alone: one `LocalEngine` (the pipeline's own pocketsphinx adapter, model loaded once)
 *   transcribes each sentence's span of the 16 kHz audio; its CPU is the pocketsphinx process
 *   tree's, read from /proc;
 * - pipeline: a nats-server child, `capture serve --role gateway` and `capture serve --role ai`
 *   children; a session is created and started, its mic's segments PUT in real time (each when
 *   it would have finished recording), transcription started with a WebSocket; the AI worker's
 *   CPU (node, its ffmpeg decodes, its pocketsphinx) from start to the last final message. Run
 *   twice: finals only (`CAPTURE_AI_INTERIM=false`) and with interim results (the default).
 *
 * Printed and written to bench/results/: audio seconds per CPU second for each and the ratio
 * (target: the pipeline costs ≤ 1.1× the engine alone), end of utterance → final WebSocket message
 * p50/p99 (target p50 ≤ segment length + 1 s), word error rate of each on the sentence set.
 *
 *   pnpm bench:transcript [--rounds 1]
 */
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { loadavg } from "node:os"
import { parseArgs } from "node:util"
import { LocalEngine, pcmOfWav } from "@capture/ai"
import { resolveFfmpeg } from "@capture/recorder/Ffmpeg"
import {
  festivalAvailable,
  SPEECH_SENTENCES,
  type SpeechRecording,
  speechRecording,
  startNatsServer,
  wordErrorRate,
} from "@capture/testkit"
import { startCaptureServer } from "./lib/captureServer.js"
import { openCollectionSocket } from "./lib/collectionSocket.js"
import { accepted, makeJsonClient, stringField } from "./lib/jsonClient.js"
import { cpuMs, descendants, reapedChildrenCpuMs, treeCpuMs } from "./lib/processCpu.js"
import { writeResults } from "./lib/stats.js"
import { Teardown } from "./lib/teardown.js"

const API_KEY = "sk-bench-transcript-key"
const SEGMENT_SECONDS = 2
const { values: flags } = parseArgs({ options: { rounds: { type: "string", default: "1" } } })
const rounds = Math.max(1, Number(flags.rounds))

const percentile = (values: ReadonlyArray<number>, p: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN)
}

/** Word error rate over the whole set: edits summed over reference words summed. */
const setWer = (pairs: ReadonlyArray<{ readonly reference: string; readonly heard: string }>): number => {
  let edits = 0
  let words = 0
  for (const { reference, heard } of pairs) {
    const n = reference.split(/\s+/).filter(Boolean).length
    edits += wordErrorRate(reference, heard) * n
    words += n
  }
  return words === 0 ? 0 : edits / words
}

interface EngineAlone {
  readonly cpuMs: number
  readonly wer: number
  readonly heard: ReadonlyArray<string>
}

/** The engine on each sentence's span (±150 ms, as the voice activity detector pads). */
const engineAlone = async (recording: SpeechRecording): Promise<EngineAlone> => {
  const pcm = pcmOfWav(new Uint8Array(readFileSync(recording.wav)))
  const engine = new LocalEngine()
  const heard: Array<string> = []
  try {
    for (const sentence of recording.sentences) {
      const from = Math.max(0, Math.round((sentence.startMs - 150) * 16))
      const to = Math.min(pcm.length, Math.round((sentence.endMs + 150) * 16))
      heard.push(await engine.transcribe(pcm.subarray(from, to)))
    }
    // Only the engine's processes are children of this one now.
    const cpu = descendants(process.pid).reduce((sum, pid) => sum + cpuMs(pid) + reapedChildrenCpuMs(pid), 0)
    return {
      cpuMs: cpu,
      wer: setWer(recording.sentences.map((s, i) => ({ reference: s.text, heard: heard[i] ?? "" }))),
      heard,
    }
  } finally {
    await engine.close()
  }
}

interface PipelineRun {
  readonly interim: boolean
  readonly cpuMs: number
  readonly gatewayCpuMs: number
  readonly latenciesMs: ReadonlyArray<number>
  readonly wer: number
  readonly finals: number
  readonly interims: number
  readonly heard: ReadonlyArray<string>
}

const pipeline = async (
  recording: SpeechRecording,
  natsUrl: string,
  interim: boolean,
): Promise<PipelineRun> => {
  const teardown = new Teardown()
  try {
    const gateway = teardown.add(
      "gateway",
      await startCaptureServer({ natsUrl, apiKey: API_KEY, args: ["--role", "gateway"] }),
    )
    const worker = teardown.add(
      "ai worker",
      await startCaptureServer({
        natsUrl,
        apiKey: API_KEY,
        args: ["--role", "ai"],
        readyPath: "/healthz",
        env: { CAPTURE_AI_INTERIM: String(interim) },
      }),
    )
    const client = makeJsonClient(gateway.url, { "x-access-token": API_KEY }, { maxSockets: 4 })
    teardown.add("client", { stop: async () => client.close() })
    const finals: Array<{
      readonly text: string
      readonly start: number
      readonly end: number
      readonly at: number
    }> = []
    let interims = 0
    const { socket, connectionId } = await openCollectionSocket(client, (message) => {
      if (message.channel !== "transcript") return
      const data = message.data as { text: string; start: number; end: number; is_final: boolean }
      if (data.is_final) finals.push({ ...data, at: Date.now() })
      else interims++
    })
    teardown.add("socket", { stop: async () => socket.terminate() })
    const created = accepted(
      "create",
      await client.send("POST", "/collection/default/capture/session", {
        end_user_id: "bench-transcript",
        ws_connection_id: connectionId,
      }),
    )
    const sessionId = stringField(created, "id")
    accepted(
      "start",
      await client.send("POST", "/capture/session/start", {
        session_id: sessionId,
        channels: [{ channel_id: "mic:default" }],
      }),
    )
    const put = async (index: number, startMs: number) => {
      const segment = recording.segments[index]
      if (segment === undefined) return
      const response = await fetch(
        `${gateway.url}/capture/session/${sessionId}/channels/mic%3Adefault/segments/${index}`,
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
    // The recording began one segment ago: segment 0 is done now.
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
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
    const cpuBefore = treeCpuMs(worker.pid)
    const gatewayBefore = treeCpuMs(gateway.pid)
    accepted(
      "start transcription",
      await client.send("POST", `/rtstream/${rtstreamId}/transcription`, { action: "start" }),
    )
    for (let index = 1; index < recording.segments.length; index++) {
      const segment = recording.segments[index]
      if (segment === undefined) break
      const due = startMs + segment.offsetMs + segment.durationMs
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - Date.now())))
      await put(index, startMs)
    }
    const deadline = Date.now() + 120_000
    while (finals.length < recording.sentences.length && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    const cpu = treeCpuMs(worker.pid) - cpuBefore
    const gatewayCpu = treeCpuMs(gateway.pid) - gatewayBefore
    // Each sentence's final: the one overlapping it most.
    const latencies: Array<number> = []
    const heard = recording.sentences.map((sentence) => {
      const from = startMs + sentence.startMs
      const to = startMs + sentence.endMs
      const overlap = (f: { start: number; end: number }) => Math.min(to, f.end) - Math.max(from, f.start)
      const best = [...finals].sort((a, b) => overlap(b) - overlap(a))[0]
      if (best === undefined || overlap(best) <= 0) return ""
      latencies.push(best.at - to)
      return best.text
    })
    return {
      interim,
      cpuMs: cpu,
      gatewayCpuMs: gatewayCpu,
      latenciesMs: latencies,
      wer: setWer(recording.sentences.map((s, i) => ({ reference: s.text, heard: heard[i] ?? "" }))),
      finals: finals.length,
      interims,
      heard,
    }
  } finally {
    await teardown.run()
  }
}

const main = async () => {
  if (!festivalAvailable())
    throw new Error("bench:transcript needs Festival (bash scripts/bootstrap.sh --test)")
  const ffmpeg = resolveFfmpeg()
  // Segment 0 (before transcription starts) is silence only.
  const recording = await speechRecording(ffmpeg, SPEECH_SENTENCES, {
    leadMs: 2_500,
    segmentSeconds: SEGMENT_SECONDS,
  })
  const audioSeconds = recording.sentences.reduce((sum, s) => sum + (s.endMs - s.startMs + 300), 0) / 1000
  const recordingSeconds = recording.durationMs / 1000
  console.log(
    `bench:transcript: ${recording.sentences.length} sentences, ${recordingSeconds.toFixed(1)} s recorded (${audioSeconds.toFixed(1)} s of speech), ${recording.segments.length} segments of ${SEGMENT_SECONDS} s, load ${loadavg()[0]?.toFixed(1)}`,
  )
  const results: Array<{ readonly alone: EngineAlone; readonly runs: ReadonlyArray<PipelineRun> }> = []
  const nats = await startNatsServer({ kind: "process" })
  try {
    for (let round = 1; round <= rounds; round++) {
      const alone = await engineAlone(recording)
      const runs = [await pipeline(recording, nats.url, false), await pipeline(recording, nats.url, true)]
      results.push({ alone, runs })
      const perCpu = (ms: number) => (ms === 0 ? Number.NaN : recordingSeconds / (ms / 1000))
      console.log(
        `\nround ${round}                         CPU s   recorded s / CPU s   vs engine   WER     latency p50 / p99 ms`,
      )
      console.log(
        `engine alone (LocalEngine)   ${(alone.cpuMs / 1000).toFixed(2).padStart(8)}   ${perCpu(alone.cpuMs).toFixed(2).padStart(18)}   ${"1.00x".padStart(9)}   ${alone.wer.toFixed(3)}`,
      )
      for (const run of runs) {
        console.log(
          `pipeline, ${run.interim ? "with interims  " : "finals only    "}   ${(run.cpuMs / 1000).toFixed(2).padStart(8)}   ${perCpu(run.cpuMs).toFixed(2).padStart(18)}   ${`${(run.cpuMs / alone.cpuMs).toFixed(2)}x`.padStart(9)}   ${run.wer.toFixed(3)}   ${percentile(run.latenciesMs, 50).toFixed(0)} / ${percentile(run.latenciesMs, 99).toFixed(0)}  (${run.finals} finals, ${run.interims} interims; gateway ${(run.gatewayCpuMs / 1000).toFixed(2)} CPU s)`,
        )
      }
    }
  } finally {
    await nats.stop()
  }
  const file = writeResults("transcript", {
    date: new Date().toISOString(),
    load: loadavg(),
    segmentSeconds: SEGMENT_SECONDS,
    recordingSeconds,
    speechSeconds: audioSeconds,
    sentences: recording.sentences,
    targets: { costRatio: 1.1, latencyP50Ms: SEGMENT_SECONDS * 1000 + 1000 },
    rounds: results,
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
