import type { AudioIndexMessage, SessionId, TranscriptMessage } from "@capture/protocol"
import {
  festivalAvailable,
  type NatsServerHandle,
  type SpeechRecording,
  speechRecording,
  startNatsServer,
  wordRecall,
} from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killIfRunning, runCli } from "./cli.js"
import { type CaptureServer, pollUntil, startCaptureServer } from "./endToEnd.js"
import { ffmpeg } from "./media.js"
import { openSocket, type RecordingSocket, uploadSegment } from "./transcription.js"

const SENTENCES = [
  "Let's schedule the meeting for Thursday.",
  "The budget discussion is next week.",
  "Please send the report to the team before Friday.",
]
// The local engine (pocketsphinx) on Festival's voice through AAC: at least half of each sentence's words.
const RECALL = 0.5

let nats: NatsServerHandle
let server: CaptureServer
let recording: SpeechRecording

beforeAll(async () => {
  nats = await startNatsServer()
  server = await startCaptureServer(nats.url)
  // Segment 0 (it activates the session, before transcription starts) holds silence only.
  if (festivalAvailable()) recording = await speechRecording(ffmpeg, SENTENCES, { leadMs: 3_000 })
})
afterAll(async () => {
  await killIfRunning(server?.process)
  await nats?.stop()
})

const transcripts = (socket: RecordingSocket): ReadonlyArray<TranscriptMessage> =>
  socket.messages.filter((m): m is TranscriptMessage => "channel" in m && m.channel === "transcript")

/** A created and started session (mic + display) whose mic's segment 0 made it active; its rtstreams. */
const activeSession = async (wsConnectionId: string, startMs: number) => {
  const created = await server.data("POST", "/collection/default/capture/session", {
    end_user_id: "user-transcript",
    ws_connection_id: wsConnectionId,
  })
  const sessionId = created.id as SessionId
  await server.data("POST", "/capture/session/start", {
    session_id: sessionId,
    channels: [{ channel_id: "mic:default" }, { channel_id: "display:1" }],
  })
  await uploadSegment(server, sessionId, recording, 0, startMs)
  const view = await pollUntil(
    "rtstreams",
    () => server.data("GET", `/collection/default/capture/session/${sessionId}`),
    (session) => (session.rtstreams as ReadonlyArray<unknown>).length === 2,
  )
  const rtstreams = view.rtstreams as ReadonlyArray<{ rtstream_id: string; name: string }>
  const idOf = (channel: string) => rtstreams.find((r) => r.name === channel)?.rtstream_id ?? ""
  return { sessionId, mic: idOf("mic:default"), display: idOf("display:1") }
}

describe.skipIf(!festivalAvailable())("live transcription through capture serve (local engine)", () => {
  it("refuses bad input with a stable code and the field", async () => {
    const socket = await openSocket(server)
    try {
      const { mic, display } = await activeSession(socket.connectionId, Date.now())
      const post = (id: string, body: object) => server.call("POST", `/rtstream/${id}/transcription`, body)
      const display400 = await post(display, { action: "start" })
      expect([display400.status, display400.body.error_code, display400.body.field]).toEqual([
        400,
        "rtstream_not_audio",
        "rtstream_id",
      ])
      const engine400 = await post(mic, { action: "start", engine: "whisper-9000" })
      expect([engine400.status, engine400.body.error_code, engine400.body.field]).toEqual([
        400,
        "unknown_engine",
        "engine",
      ])
      const openai400 = await post(mic, { action: "start", engine: "openai" })
      expect([openai400.status, openai400.body.error_code]).toEqual([400, "unknown_engine"])
      const forged = await post(mic, { action: "start", ws_connection_id: "ws-not-a-socket-of-ours" })
      expect([forged.status, forged.body.error_code, forged.body.field]).toEqual([
        403,
        "forbidden",
        "ws_connection_id",
      ])
      const action400 = await post(mic, { action: "pause" })
      expect([action400.status, action400.body.field]).toEqual([400, "action"])
      for (const size of ["0", "1001", "ten"]) {
        const page = await server.call("GET", `/rtstream/${mic}/transcription?page_size=${size}`)
        expect([page.status, page.body.error_code, page.body.field]).toEqual([
          400,
          "invalid_field",
          "page_size",
        ])
      }
      const unknown = await post("rts-01NOSUCHRTSTREAM0000000000", { action: "start" })
      expect([unknown.status, unknown.body.error_code, unknown.body.field]).toEqual([
        404,
        "rtstream_not_found",
        "rtstream_id",
      ])
      const hostile = await post("rts-..%2A", { action: "start" })
      expect([hostile.status, hostile.body.field]).toEqual([400, "rtstream_id"])
      // A client token reaches its own end user's rtstreams only.
      const token = async (user: string) =>
        (await server.data("POST", "/capture/session/token", { user_id: user })).token as string
      const asClient = async (user: string) =>
        fetch(`${server.base}/rtstream/${mic}/transcription`, {
          method: "POST",
          headers: { "x-access-token": await token(user), "content-type": "application/json" },
          body: JSON.stringify({ action: "start" }),
        })
      // Another end user's rtstream is not found, as on every /rtstream route (never revealed).
      const stranger = await asClient("someone-else")
      expect(stranger.status).toBe(404)
      expect(((await stranger.json()) as { error_code: string }).error_code).toBe("rtstream_not_found")
      const owner = await asClient("user-transcript")
      expect(owner.status).toBe(200)
      // Starting twice is one start.
      const again = await post(mic, { action: "start", engine: "assemblyai" })
      expect(again.status).toBe(200)
      expect((again.body.data as { status: string; engine: string }).status).toBe("active")
      const stopped = await post(mic, { action: "stop", mode: "force" })
      expect((stopped.body.data as { status: string }).status).toBe("stopped")
    } finally {
      socket.close()
    }
  })

  it("sends transcript messages in order to the socket and keeps the transcript readable with paging and since", async () => {
    const socket = await openSocket(server)
    try {
      const startMs = Date.now() - 30_000
      const { sessionId, mic } = await activeSession(socket.connectionId, startMs)
      const started = await server.data("POST", `/rtstream/${mic}/transcription`, {
        action: "start",
        ws_connection_id: socket.connectionId,
      })
      expect(started).toMatchObject({ rtstream_id: mic, status: "active", engine: "local" })
      // An audio index of one sentence per batch (transcription runs already: not started again).
      const audioIndex = await server.data("POST", `/rtstream/${mic}/index/scene`, {
        extraction_type: "transcript",
        extraction_config: { segmenter: "sentence", segmentation_value: 1 },
        ws_connection_id: socket.connectionId,
      })
      expect(audioIndex).toMatchObject({ kind: "audio", status: "connected" })
      for (let index = 1; index < recording.segments.length; index++) {
        await uploadSegment(server, sessionId, recording, index, startMs)
      }
      await pollUntil(
        "final transcripts",
        async () => transcripts(socket).filter((m) => m.data.is_final).length,
        (finals) => finals >= SENTENCES.length,
        { timeoutMs: 120_000, intervalMs: 250 },
      )
      const finals = transcripts(socket).filter((m) => m.data.is_final)
      expect(finals).toHaveLength(SENTENCES.length)
      for (const [i, sentence] of recording.sentences.entries()) {
        const heard = finals[i]
        expect(heard?.rtstream_id).toBe(mic)
        expect(heard?.rtstream_name).toBeTruthy()
        expect(wordRecall(sentence.text, heard?.data.text ?? "")).toBeGreaterThanOrEqual(RECALL)
        expect(Math.abs((heard?.data.start ?? 0) - (startMs + sentence.startMs))).toBeLessThan(400)
        expect(Math.abs((heard?.data.end ?? 0) - (startMs + sentence.endMs))).toBeLessThan(400)
      }
      // In order: every message starts no earlier than the final before it ended.
      let lastFinalEnd = 0
      for (const message of transcripts(socket)) {
        expect(message.data.start).toBeGreaterThanOrEqual(lastFinalEnd - 1)
        if (message.data.is_final) lastFinalEnd = message.data.end
      }
      expect(socket.undecodable).toEqual([])
      // Each sentence is an audio_index message too: without a chat model, its transcript.
      const audio = await pollUntil(
        "audio_index messages",
        async () =>
          socket.messages.filter(
            (m): m is AudioIndexMessage => "channel" in m && m.channel === "audio_index",
          ),
        (found) => found.length >= SENTENCES.length,
      )
      expect(audio.map((m) => m.data.text)).toEqual(finals.map((m) => m.data.text))
      expect(audio.every((m) => m.index_id === audioIndex.rtstream_index_id)).toBe(true)

      // Search finds a spoken sentence, its time range inside the recording.
      const spoken = await server.data("POST", `/rtstream/${mic}/search`, {
        query: "budget discussion",
        index_type: "spoken_word",
      })
      const shot = (
        spoken.results as ReadonlyArray<{ text: string; start: number; end: number; kind: string }>
      )[0]
      expect(shot?.kind).toBe("transcript")
      expect(shot?.text).toMatch(/budget|discussion/i)
      expect((shot?.start ?? 0) * 1000).toBeGreaterThanOrEqual(startMs)
      expect((shot?.end ?? 0) * 1000).toBeLessThanOrEqual(startMs + recording.durationMs)

      // The API: pages of one, then only what ended after the first.
      const page1 = await server.data("GET", `/rtstream/${mic}/transcription?page_size=1`)
      expect(page1).toMatchObject({
        page: 1,
        page_size: 1,
        next_page: 2,
        total: SENTENCES.length,
        status: "active",
      })
      const all = await server.data("GET", `/rtstream/${mic}/transcription`)
      const segments = all.segments as ReadonlyArray<{ text: string; end: number; is_final: boolean }>
      expect(segments.map((s) => s.text)).toEqual(finals.map((m) => m.data.text))
      const first = segments[0]
      const newer = await server.data("GET", `/rtstream/${mic}/transcription?since=${first?.end}`)
      expect((newer.segments as ReadonlyArray<unknown>).length).toBe(SENTENCES.length - 1)

      // Part of the session's history: `capture replay` shows the transcript.
      const replay = await runCli(["replay", sessionId, "--nats", nats.url])
      expect(replay.code).toBe(0)
      expect(replay.stdout).toContain("TranscriptionStarted")
      expect(replay.stdout).toContain("SceneIndexCreated")
      expect(replay.stdout.match(/TranscriptProduced .*final/g)?.length).toBe(SENTENCES.length)
    } finally {
      socket.close()
    }
  }, 180_000)
})
