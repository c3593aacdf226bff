import { LocalEngine, pcmOfWav } from "@capture/ai"
import type { ErrorMessage, SessionId, TranscriptMessage } from "@capture/protocol"
import {
  festivalAvailable,
  type NatsServerHandle,
  type SpeechRecording,
  speechRecording,
  startNatsServer,
  startTranscriptionProvider,
  type TranscriptionProvider,
  wordRecall,
} from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killIfRunning } from "./cli.js"
import { type CaptureServer, pollUntil, startCaptureServer } from "./endToEnd.js"
import { ffmpeg } from "./media.js"
import { openSocket, uploadSegment } from "./transcription.js"

const KEY = "sk-openai-compatible-test"
const SENTENCES = [
  "Let's schedule the meeting for Thursday.",
  "The budget discussion is next week.",
  "We need to review the quarterly sales numbers.",
]

let nats: NatsServerHandle
let server: CaptureServer
let provider: TranscriptionProvider
let local: LocalEngine
let recording: SpeechRecording

beforeAll(async () => {
  nats = await startNatsServer()
  // The provider's "model" is the local engine behind a real HTTP API.
  local = new LocalEngine()
  provider = await startTranscriptionProvider({
    apiKey: KEY,
    transcribe: (wav) => local.transcribe(pcmOfWav(wav)),
  })
  server = await startCaptureServer(nats.url, {
    env: {
      CAPTURE_OPENAI_BASE_URL: provider.baseUrl,
      CAPTURE_OPENAI_API_KEY: KEY,
      CAPTURE_AI_ENGINE_ATTEMPTS: "2",
      CAPTURE_AI_RETRY_DELAY_MS: "200",
      CAPTURE_AI_INTERIM: "false",
    },
  })
  if (festivalAvailable()) recording = await speechRecording(ffmpeg, SENTENCES, { leadMs: 3_000 })
})
afterAll(async () => {
  await killIfRunning(server?.process)
  await provider?.close()
  await local?.close()
  await nats?.stop()
})

describe.skipIf(!festivalAvailable())("transcription through an OpenAI-compatible provider", () => {
  it("reports a provider that is down as an error naming the rtstream, goes on when it is back, and never holds up the session", async () => {
    const socket = await openSocket(server)
    try {
      const startMs = Date.now() - 30_000
      const created = await server.data("POST", "/collection/default/capture/session", {
        end_user_id: "user-provider",
        ws_connection_id: socket.connectionId,
      })
      const sessionId = created.id as SessionId
      await server.data("POST", "/capture/session/start", {
        session_id: sessionId,
        channels: [{ channel_id: "mic:default" }],
      })
      await uploadSegment(server, sessionId, recording, 0, startMs)
      const view = await pollUntil(
        "rtstream",
        () => server.data("GET", `/collection/default/capture/session/${sessionId}`),
        (session) => (session.rtstreams as ReadonlyArray<unknown>).length === 1,
      )
      const mic = (view.rtstreams as ReadonlyArray<{ rtstream_id: string }>)[0]?.rtstream_id ?? ""
      const started = await server.data("POST", `/rtstream/${mic}/transcription`, {
        action: "start",
        engine: "openai",
      })
      expect(started).toMatchObject({ status: "active", engine: "openai" })

      // Down while the first sentence is spoken: every segment is still taken in.
      provider.setDown(true)
      const firstDone = recording.sentences[1]?.startMs ?? 0
      let next = 1
      for (; next < recording.segments.length; next++) {
        const segment = recording.segments[next]
        if (segment === undefined || segment.offsetMs + segment.durationMs > firstDone) break
        await uploadSegment(server, sessionId, recording, next, startMs)
      }
      const errors = () =>
        socket.messages.filter((m): m is ErrorMessage => "channel" in m && m.channel === "error")
      await pollUntil(
        "an error message",
        async () => errors().length,
        (n) => n >= 1,
        { timeoutMs: 60_000 },
      )
      expect(errors()[0]).toMatchObject({
        error_code: "engine_unavailable",
        rtstream_id: mic,
        rtstream_name: expect.any(String),
      })
      expect(errors()[0]?.message).toContain("503")

      // Back: the rest is transcribed.
      provider.setDown(false)
      for (; next < recording.segments.length; next++)
        await uploadSegment(server, sessionId, recording, next, startMs)
      const finals = () =>
        socket.messages.filter(
          (m): m is TranscriptMessage => "channel" in m && m.channel === "transcript" && m.data.is_final,
        )
      await pollUntil(
        "transcripts after the provider came back",
        async () => finals().length,
        (n) => n >= 2,
        {
          timeoutMs: 120_000,
        },
      )
      expect(finals()).toHaveLength(2)
      expect(wordRecall(SENTENCES[1] ?? "", finals()[0]?.data.text ?? "")).toBeGreaterThanOrEqual(0.5)
      expect(wordRecall(SENTENCES[2] ?? "", finals()[1]?.data.text ?? "")).toBeGreaterThanOrEqual(0.5)
      const served = provider.requests.filter((r) => r.status === 200)
      expect(served.every((r) => r.model === "whisper-1" && r.contentType === "audio/wav")).toBe(true)

      // The recording went on regardless: stop and export as usual.
      await server.data("POST", `/capture/session/${sessionId}/stop`)
      await pollUntil(
        "exported",
        () => server.data("GET", `/collection/default/capture/session/${sessionId}`),
        (session) => session.status === "exported",
        { timeoutMs: 60_000 },
      )
    } finally {
      socket.close()
    }
  }, 240_000)
})
