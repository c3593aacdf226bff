/**
 * An alert exactly once across a SIGKILL of the AI worker: Festival speech through `serve --role
 * gateway` and `serve --role ai`, an audio index of one sentence per result, an alert on a matching
 * event with a callback URL on 127.0.0.1; the worker is SIGKILLed mid-stream and another started.
 * The receiver gets the signed alert once per matching result, none for the others.
 */
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { LocalEngine, pcmOfWav } from "@capture/ai"
import { type SessionId, verifyWebhook } from "@capture/protocol"
import {
  festivalAvailable,
  getFreePort,
  type NatsServerHandle,
  type SpeechRecording,
  speechRecording,
  startNatsServer,
  startTranscriptionProvider,
  type TranscriptionProvider,
} from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killIfRunning, type ServeProcess, startServe } from "./cli.js"
import { type CaptureServer, pollUntil, startCaptureServer } from "./endToEnd.js"
import { ffmpeg } from "./media.js"
import { uploadSegment } from "./transcription.js"

const KEY = "sk-alert-crash-provider"
const SENTENCES = [
  "The budget discussion is next week.",
  "Let's schedule the meeting for Thursday.",
  "We need to review the budget numbers.",
  "I will call you back in ten minutes.",
  "Please send the budget to the team before Friday.",
  "The project deadline moved to the end of the month.",
]

let nats: NatsServerHandle
let gateway: CaptureServer
let provider: TranscriptionProvider
let local: LocalEngine
let recording: SpeechRecording
const workers: Array<ServeProcess> = []

interface Received {
  readonly id: string
  readonly verified: boolean
  readonly body: Record<string, unknown>
}
const received: Array<Received> = []
const receiver = createServer((request, response) => {
  const chunks: Array<Buffer> = []
  request.on("data", (chunk: Buffer) => chunks.push(chunk))
  request.on("end", () => {
    const raw = Buffer.concat(chunks).toString("utf8")
    const header = (name: string) => String(request.headers[name] ?? "")
    const id = header("webhook-id")
    received.push({
      id,
      verified: verifyWebhook(
        gateway.webhookSecret,
        { id, timestamp: header("webhook-timestamp"), signature: header("webhook-signature") },
        raw,
      ),
      body: JSON.parse(raw) as Record<string, unknown>,
    })
    response.writeHead(204).end()
  })
})

const aiEnv = (): Record<string, string> => ({
  NATS_URL: nats.url,
  CAPTURE_OPENAI_BASE_URL: provider.baseUrl,
  CAPTURE_OPENAI_API_KEY: KEY,
  CAPTURE_TRANSCRIPTION_ENGINE: "openai",
  // A killed worker's segment goes to another one after 3 s.
  CAPTURE_AI_ACK_WAIT_MS: "3000",
})

const startWorker = async (): Promise<ServeProcess> => {
  const worker = startServe(["--role", "ai", "--port", String(await getFreePort())], aiEnv())
  workers.push(worker)
  await worker.waitFor(/\[capture\] ready/, 180_000)
  return worker
}

beforeAll(async () => {
  nats = await startNatsServer()
  local = new LocalEngine()
  // A slow provider (1.2 s an utterance): the worker is caught with a request in flight.
  provider = await startTranscriptionProvider({
    apiKey: KEY,
    delayMs: 1_200,
    transcribe: (wav) => local.transcribe(pcmOfWav(wav)),
  })
  gateway = await startCaptureServer(nats.url, { env: aiEnv(), args: ["--role", "gateway"] })
  receiver.listen(0, "127.0.0.1")
  await new Promise((resolve) => receiver.once("listening", resolve))
  if (festivalAvailable()) {
    recording = await speechRecording(ffmpeg, SENTENCES, { leadMs: 6_500, gapMs: 1_000, segmentSeconds: 6 })
  }
}, 300_000)
afterAll(async () => {
  for (const worker of workers) await killIfRunning(worker)
  await killIfRunning(gateway?.process)
  receiver.closeAllConnections()
  await new Promise((resolve) => receiver.close(resolve))
  await provider?.close()
  await local?.close()
  await nats?.stop()
})

describe.skipIf(!festivalAvailable())("an alert across a SIGKILL of the AI worker", () => {
  it("reaches the callback signed, exactly once per matching result", async () => {
    const workerA = await startWorker()
    const startMs = Date.now() - 120_000
    const sessionId = (
      await gateway.data("POST", "/collection/default/capture/session", { end_user_id: "user-alert" })
    ).id as SessionId
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
    // One result per sentence; the index starts transcription itself (auto_start_transcript).
    const index = await gateway.data("POST", `/rtstream/${mic}/index/scene`, {
      extraction_type: "transcript",
      extraction_config: { segmenter: "sentence", segmentation_value: 1 },
    })
    const indexId = index.rtstream_index_id as string
    const event = await gateway.data("POST", "/rtstream/event", {
      event_prompt: "Alert when the budget is discussed",
      label: "budget",
    })
    const callbackUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/alerts`
    const alert = await gateway.data("POST", `/rtstream/${mic}/index/${indexId}/alert`, {
      event_id: event.event_id,
      callback_url: callbackUrl,
    })
    for (let i = 1; i < recording.segments.length; i++) {
      await uploadSegment(gateway, sessionId, recording, i, startMs)
    }
    type Scene = { start: number; end: number; text: string }
    const scenes = async () =>
      (await gateway.data("GET", `/rtstream/${mic}/index/scene/${indexId}?page_size=1000`))
        .scene_index_records as ReadonlyArray<Scene>
    // Killed mid-stream: once a first result is stored and the next utterance is in flight.
    await pollUntil(
      "a first result, with the next utterance in flight",
      async () => ({ stored: (await scenes()).length, inFlight: provider.inFlight() }),
      (now) => now.stored >= 1 && now.inFlight >= 1,
      { timeoutMs: 120_000, intervalMs: 50 },
    )
    workerA.child.kill("SIGKILL")
    await workerA.exited
    await startWorker()

    // Every sentence transcribed and in a stored result (a segment's utterances batch together).
    const words = (texts: ReadonlyArray<{ text: string }>) =>
      texts
        .map((t) => t.text)
        .join(" ")
        .split(/\s+/)
    const settled = await pollUntil(
      "every sentence transcribed and in a result",
      async () => ({
        finals: (await gateway.data("GET", `/rtstream/${mic}/transcription?page_size=1000`))
          .segments as ReadonlyArray<{
          text: string
        }>,
        scenes: await scenes(),
      }),
      (now) => now.finals.length >= SENTENCES.length && words(now.scenes).length >= words(now.finals).length,
      { timeoutMs: 240_000, intervalMs: 500 },
    )
    const stored = settled.scenes
    const matching = stored.filter((scene) => /budget/i.test(scene.text))
    // What pocketsphinx heard decides which results match; the sentences make three.
    expect(matching.length).toBeGreaterThanOrEqual(2)
    await pollUntil(
      "the alerts' webhooks",
      async () => received.length,
      (n) => n >= matching.length,
      { timeoutMs: 60_000 },
    )
    // Let a late duplicate show itself, if there were one.
    await new Promise((resolve) => setTimeout(resolve, 5_000))
    expect(words(stored)).toEqual(words(settled.finals))
    expect(received).toHaveLength(matching.length)
    expect(new Set(received.map((r) => r.id)).size).toBe(received.length)
    for (const hook of received) {
      expect(hook.verified).toBe(true)
      expect(hook.body).toMatchObject({
        type: "alert",
        alert_id: alert.alert_id,
        event_id: event.event_id,
        label: "budget",
        rtstream_id: mic,
      })
    }
    // One per matching result: the webhooks' ranges are the matching scenes'.
    const ranges = (items: ReadonlyArray<{ start: number; end: number }>) =>
      items.map((r) => `${Math.round(r.start)}-${Math.round(r.end)}`).sort()
    expect(
      ranges(received.map((r) => ({ start: Number(r.body.start_time), end: Number(r.body.end_time) }))),
    ).toEqual(ranges(matching))
  }, 480_000)
})
