import { LocalEngine, pcmOfWav } from "@capture/ai"
import { MediaStore } from "@capture/media"
import type { SessionId, TranscriptMessage } from "@capture/protocol"
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
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killIfRunning, type ServeProcess, startServe } from "./cli.js"
import { type CaptureServer, pollUntil, startCaptureServer } from "./endToEnd.js"
import { ffmpeg } from "./media.js"
import { openSocket, uploadSegment } from "./transcription.js"

const KEY = "sk-crash-test-provider"
const SENTENCES = [
  "Let's schedule the meeting for Thursday.",
  "The budget discussion is next week.",
  "Please send the report to the team before Friday.",
  "We need to review the quarterly sales numbers.",
  "I will call you back in ten minutes.",
  "The project deadline moved to the end of the month.",
]

let nats: NatsServerHandle
let nc: NatsConnection
let gateway: CaptureServer
let provider: TranscriptionProvider
let local: LocalEngine
let recording: SpeechRecording
const workers: Array<ServeProcess> = []

const aiEnv = (): Record<string, string> => ({
  NATS_URL: nats.url,
  CAPTURE_OPENAI_BASE_URL: provider.baseUrl,
  CAPTURE_OPENAI_API_KEY: KEY,
  CAPTURE_TRANSCRIPTION_ENGINE: "openai",
  // A killed worker's segment goes to another one after 3 s.
  CAPTURE_AI_ACK_WAIT_MS: "3000",
})

/** A `capture serve --role ai` process: the AI pipeline alone. */
const startWorker = async (): Promise<ServeProcess> => {
  const worker = startServe(["--role", "ai", "--port", String(await getFreePort())], aiEnv())
  workers.push(worker)
  await worker.waitFor(/\[capture\] ready/, 60_000)
  return worker
}

beforeAll(async () => {
  nats = await startNatsServer()
  nc = await connect({ servers: nats.url })
  local = new LocalEngine()
  // A slow provider (1.2 s an utterance): a worker is caught with requests in flight.
  provider = await startTranscriptionProvider({
    apiKey: KEY,
    delayMs: 1_200,
    transcribe: (wav) => local.transcribe(pcmOfWav(wav)),
  })
  // The API alone: the only pipelines are the workers below.
  gateway = await startCaptureServer(nats.url, { env: aiEnv(), args: ["--role", "gateway"] })
  // Six-second segments with short pauses: a segment holds several utterances, so a kill can
  // land between two results of one segment.
  if (festivalAvailable()) {
    recording = await speechRecording(ffmpeg, SENTENCES, { leadMs: 6_500, gapMs: 1_000, segmentSeconds: 6 })
  }
})
afterAll(async () => {
  for (const worker of workers) await killIfRunning(worker)
  await killIfRunning(gateway?.process)
  await provider?.close()
  await local?.close()
  await nc?.close()
  await nats?.stop()
})

describe.skipIf(!festivalAvailable())("an AI worker SIGKILLed mid-session", () => {
  it("stores and sends every utterance exactly once, also when a segment is delivered again", async () => {
    const workerA = await startWorker()
    const socket = await openSocket(gateway)
    try {
      const startMs = Date.now() - 120_000
      const created = await gateway.data("POST", "/collection/default/capture/session", {
        end_user_id: "user-crash",
        ws_connection_id: socket.connectionId,
      })
      const sessionId = created.id as SessionId
      await gateway.data("POST", "/capture/session/start", {
        session_id: sessionId,
        channels: [{ channel_id: "mic:default" }],
      })
      await uploadSegment(gateway, sessionId, recording, 0, startMs)
      const view = await pollUntil(
        "rtstream",
        () => gateway.data("GET", `/collection/default/capture/session/${sessionId}`),
        (session) => (session.rtstreams as ReadonlyArray<unknown>).length === 1,
      )
      const mic = (view.rtstreams as ReadonlyArray<{ rtstream_id: string }>)[0]?.rtstream_id ?? ""
      await gateway.data("POST", `/rtstream/${mic}/transcription`, { action: "start" })
      for (let index = 1; index < recording.segments.length; index++) {
        await uploadSegment(gateway, sessionId, recording, index, startMs)
      }
      const transcript = async () =>
        (await gateway.data("GET", `/rtstream/${mic}/transcription?page_size=1000`))
          .segments as ReadonlyArray<{
          text: string
          utterance: number
        }>
      // Kill the worker mid-utterance, once a first result is stored.
      await pollUntil(
        "a first result, with the next utterance in flight",
        async () => ({ stored: (await transcript()).length, inFlight: provider.inFlight() }),
        (now) => now.stored >= 1 && now.inFlight >= 1,
        { timeoutMs: 120_000, intervalMs: 50 },
      )
      workerA.child.kill("SIGKILL")
      await workerA.exited
      await startWorker()

      // A record delivered again (a redelivery, as after a crash between handling and ack).
      const media = await MediaStore.open(nc)
      const records = await media.list(sessionId)
      const again = records.find((r) => r.index === 1)
      if (again === undefined) throw new Error("no record of segment 1")
      await nc.publish(media.topology.subject(sessionId), JSON.stringify(again))

      await pollUntil(
        "every utterance",
        async () => (await transcript()).length,
        (n) => n >= SENTENCES.length,
        { timeoutMs: 240_000, intervalMs: 500 },
      )
      // Let a late duplicate show itself, if there were one.
      await new Promise((resolve) => setTimeout(resolve, 5_000))
      const stored = await transcript()
      expect(stored.map((s) => s.utterance)).toEqual(stored.map((_, i) => i + 1))
      expect(stored).toHaveLength(SENTENCES.length)
      for (const [i, sentence] of SENTENCES.entries()) {
        expect(wordRecall(sentence, stored[i]?.text ?? "")).toBeGreaterThanOrEqual(0.5)
      }
      const sent = socket.messages.filter(
        (m): m is TranscriptMessage => "channel" in m && m.channel === "transcript" && m.data.is_final,
      )
      expect(sent.map((m) => m.data.text)).toEqual(stored.map((s) => s.text))
    } finally {
      socket.close()
    }
  }, 480_000)
})
