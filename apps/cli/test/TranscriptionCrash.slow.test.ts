import { MediaStore } from "@capture/media"
import type { TranscriptMessage } from "@capture/protocol"
import { festivalAvailable, type SpeechRecording, speechRecording, wordRecall } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type AiCluster, settle, startAiCluster } from "./aiCluster.js"
import { pollUntil } from "./endToEnd.js"
import { ffmpeg } from "./media.js"
import { openSocket, startedSession, uploadSegment } from "./transcription.js"

const SENTENCES = [
  "Let's schedule the meeting for Thursday.",
  "The budget discussion is next week.",
  "Please send the report to the team before Friday.",
  "We need to review the quarterly sales numbers.",
  "I will call you back in ten minutes.",
  "The project deadline moved to the end of the month.",
]

let cluster: AiCluster
let recording: SpeechRecording

beforeAll(async () => {
  cluster = await startAiCluster("sk-crash-test-provider")
  // Six-second segments with short pauses: a segment holds several utterances, so a kill can
  // land between two results of one segment.
  if (festivalAvailable()) {
    recording = await speechRecording(ffmpeg, SENTENCES, { leadMs: 6_500, gapMs: 1_000, segmentSeconds: 6 })
  }
}, 300_000)
afterAll(() => cluster?.stop())

describe.skipIf(!festivalAvailable())("an AI worker SIGKILLed mid-session", () => {
  it("stores and sends every utterance exactly once, also when a segment is delivered again", async () => {
    const { gateway, nc } = cluster
    const workerA = await cluster.startRole("ai")
    const socket = await openSocket(gateway)
    try {
      const startMs = Date.now() - 120_000
      const { sessionId, rtstream: mic } = await startedSession(gateway, recording, {
        endUser: "user-crash",
        startMs,
        wsConnectionId: socket.connectionId,
      })
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
      await cluster.killMidUtterance(workerA, async () => (await transcript()).length)

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
      await settle()
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
