/**
 * An export's audio transcribed after the fact (`video.indexSpokenWords()` on a session whose mic
 * was never transcribed), through separate processes: `serve --role gateway`, `--role muxer` and
 * two `--role ai` workers behind a slow provider. The worker holding the job is SIGKILLed with an
 * utterance in flight and the job is published again; every utterance is still stored once, and
 * search finds what was said.
 */
import { AiStore } from "@capture/ai"
import { festivalAvailable, type SpeechRecording, speechRecording, wordRecall } from "@capture/testkit"
import { connect as connectVideoDb } from "videodb"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type AiCluster, settle, startAiCluster } from "./aiCluster.js"
import { pollUntil } from "./endToEnd.js"
import { ffmpeg } from "./media.js"
import { startedSession, uploadSegment } from "./transcription.js"

const SENTENCES = [
  "Let's schedule the meeting for Thursday.",
  "The budget discussion is next week.",
  "Please send the report to the team before Friday.",
  "We need to review the quarterly sales numbers.",
  "I will call you back in ten minutes.",
]

let cluster: AiCluster
let recording: SpeechRecording

beforeAll(async () => {
  cluster = await startAiCluster("sk-recording-test-provider")
  await cluster.startRole("muxer")
  if (festivalAvailable()) recording = await speechRecording(ffmpeg, SENTENCES, { leadMs: 3_000 })
}, 300_000)
afterAll(() => cluster?.stop())

describe.skipIf(!festivalAvailable())("an export's audio transcribed from the recording", () => {
  it("stores every utterance once across a SIGKILLed worker and a job delivered twice", async () => {
    const { gateway, nc } = cluster
    const workerA = await cluster.startRole("ai")
    const startMs = Date.now() - 120_000
    const { sessionId, rtstream: mic } = await startedSession(gateway, recording, {
      endUser: "user-later",
      startMs,
    })
    for (let index = 1; index < recording.segments.length; index++) {
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

    const asked = await gateway.call("POST", `/video/${videoId}/index`, { index_type: "spoken_word" })
    expect([asked.status, asked.body.status]).toEqual([202, "processing"])
    const transcript = async () =>
      (await gateway.data("GET", `/rtstream/${mic}/transcription?page_size=1000`)).segments as ReadonlyArray<{
        text: string
        utterance: number
      }>
    // Kill the worker holding the job once a first result is stored and the next is in flight.
    await cluster.killMidUtterance(workerA, async () => (await transcript()).length)
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
    await settle()
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
