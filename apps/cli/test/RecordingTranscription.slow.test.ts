/**
 * An export's audio transcribed after the fact (`video.indexSpokenWords()` on a session whose mic
 * was never transcribed), through separate processes: `serve --role gateway`, `--role muxer` and
 * two `--role ai` workers behind a slow provider. The worker holding the job is SIGKILLed with an
 * utterance in flight and the job is published again; every utterance is still stored once, and
 * search finds what was said.
 */
import { AiStore, LocalEngine, pcmOfWav } from "@capture/ai"
import type { SessionId } from "@capture/protocol"
import {
  festivalAvailable,
  getFreePort,
  type NatsServerHandle,
  type SpeechRecording,
  speechRecording,
  startNatsServer,
  startTranscriptionProvider,
  type TranscriptionProvider,
  wordRecall,
} from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { connect as connectVideoDb } from "videodb"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killIfRunning, type ServeProcess, startServe } from "./cli.js"
import { type CaptureServer, pollUntil, startCaptureServer } from "./endToEnd.js"
import { ffmpeg } from "./media.js"
import { uploadSegment } from "./transcription.js"

const KEY = "sk-recording-test-provider"
const SENTENCES = [
  "Let's schedule the meeting for Thursday.",
  "The budget discussion is next week.",
  "Please send the report to the team before Friday.",
  "We need to review the quarterly sales numbers.",
  "I will call you back in ten minutes.",
]

let nats: NatsServerHandle
let nc: NatsConnection
let gateway: CaptureServer
let provider: TranscriptionProvider
let local: LocalEngine
let recording: SpeechRecording
const processes: Array<ServeProcess> = []

const aiEnv = (): Record<string, string> => ({
  NATS_URL: nats.url,
  CAPTURE_OPENAI_BASE_URL: provider.baseUrl,
  CAPTURE_OPENAI_API_KEY: KEY,
  CAPTURE_TRANSCRIPTION_ENGINE: "openai",
  // A killed worker's job goes to another one after 3 s.
  CAPTURE_AI_ACK_WAIT_MS: "3000",
})

const startRole = async (role: "ai" | "muxer"): Promise<ServeProcess> => {
  const started = startServe(["--role", role, "--port", String(await getFreePort())], aiEnv())
  processes.push(started)
  await started.waitFor(/\[capture\] ready/, 60_000)
  return started
}

beforeAll(async () => {
  nats = await startNatsServer()
  nc = await connect({ servers: nats.url })
  local = new LocalEngine()
  // A slow provider (1.2 s an utterance): a worker is caught with a request in flight.
  provider = await startTranscriptionProvider({
    apiKey: KEY,
    delayMs: 1_200,
    transcribe: (wav) => local.transcribe(pcmOfWav(wav)),
  })
  gateway = await startCaptureServer(nats.url, { env: aiEnv(), args: ["--role", "gateway"] })
  await startRole("muxer")
  if (festivalAvailable()) recording = await speechRecording(ffmpeg, SENTENCES, { leadMs: 3_000 })
}, 180_000)
afterAll(async () => {
  for (const started of processes) await killIfRunning(started)
  await killIfRunning(gateway?.process)
  await provider?.close()
  await local?.close()
  await nc?.close()
  await nats?.stop()
})

describe.skipIf(!festivalAvailable())("an export's audio transcribed from the recording", () => {
  it("stores every utterance once across a SIGKILLed worker and a job delivered twice", async () => {
    const workerA = await startRole("ai")
    const startMs = Date.now() - 120_000
    const created = await gateway.data("POST", "/collection/default/capture/session", {
      end_user_id: "user-later",
    })
    const sessionId = created.id as SessionId
    await gateway.data("POST", "/capture/session/start", {
      session_id: sessionId,
      channels: [{ channel_id: "mic:default" }],
    })
    for (let index = 0; index < recording.segments.length; index++) {
      await uploadSegment(gateway, sessionId, recording, index, startMs)
    }
    await gateway.data("POST", `/capture/session/${sessionId}/stop`)
    const exported = await pollUntil(
      "the export",
      () => gateway.data("GET", `/collection/default/capture/session/${sessionId}`),
      (session) => session.status === "exported" || session.status === "failed",
      { timeoutMs: 180_000, intervalMs: 500 },
    )
    expect(exported.status).toBe("exported")
    const videoId = exported.exported_video_id as string
    const mic = (exported.rtstreams as ReadonlyArray<{ rtstream_id: string }>)[0]?.rtstream_id ?? ""

    const asked = await gateway.call("POST", `/video/${videoId}/index`, { index_type: "spoken_word" })
    expect([asked.status, asked.body.status]).toEqual([202, "processing"])
    const transcript = async () =>
      (await gateway.data("GET", `/rtstream/${mic}/transcription?page_size=1000`)).segments as ReadonlyArray<{
        text: string
        utterance: number
      }>
    // Kill the worker holding the job once a first result is stored and the next is in flight.
    await pollUntil(
      "a first result, with the next utterance in flight",
      async () => ({ stored: (await transcript()).length, inFlight: provider.inFlight() }),
      (now) => now.stored >= 1 && now.inFlight >= 1,
      { timeoutMs: 120_000, intervalMs: 50 },
    )
    workerA.child.kill("SIGKILL")
    await workerA.exited
    await startRole("ai")
    // The same job again, past deduplication (as if asked again after JetStream's window): two
    // workers may now hold it at once.
    const ai = await AiStore.open(nc)
    const job = {
      type: "TranscribeRecording",
      rtstream_id: mic,
      session_id: sessionId,
      channel_id: "mic:default",
      start_sequence: (await ai.load(mic)).epoch,
    }
    ai.close()
    await nc.publish(ai.topology.jobSubject(mic), JSON.stringify(job))

    const index = await pollUntil(
      "the spoken-word index",
      () => gateway.call("GET", `/video/${videoId}/index`),
      (answer) => answer.status === 200,
      { timeoutMs: 240_000, intervalMs: 1_000 },
    )
    expect(index.body.data).toMatchObject({
      segments: SENTENCES.length,
      transcription_status: "stopped",
      transcribed_from_recording: ["mic:default"],
    })
    // Let a late duplicate show itself, if there were one.
    await new Promise((resolve) => setTimeout(resolve, 5_000))
    const stored = await transcript()
    expect(stored.map((s) => s.utterance)).toEqual(SENTENCES.map((_, i) => i + 1))
    for (const [i, sentence] of SENTENCES.entries()) {
      expect(wordRecall(sentence, stored[i]?.text ?? "")).toBeGreaterThanOrEqual(0.5)
    }

    const conn = connectVideoDb({ apiKey: gateway.apiKey, baseUrl: gateway.base })
    const video = await (await conn.getCollection()).getVideo(videoId)
    const shot = (await video.search("quarterly sales numbers")).shots[0]
    expect(wordRecall(SENTENCES[3] ?? "", shot?.text ?? "")).toBeGreaterThanOrEqual(0.5)
  }, 480_000)
})
