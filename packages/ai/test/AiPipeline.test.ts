import {
  festivalAvailable,
  type NatsServerHandle,
  type SpeechRecording,
  speechRecording,
  startNatsServer,
  waitFor,
  wordRecall,
} from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  AiPipeline,
  type AiStore,
  controlTranscription,
  createIndex,
  LocalEngine,
  readScenes,
  readTranscript,
} from "../src/index.js"
import { activeSession, type Deployment, decoders, ffmpeg, openDeployment, putSegment } from "./support.js"

const SENTENCES = ["Let's schedule the meeting for Thursday.", "The budget discussion is next week."]
// Measured on Festival's slt voice through AAC segments: pocketsphinx hears most words.
const RECALL = 0.6

let nats: NatsServerHandle
let nc: NatsConnection
let recording: SpeechRecording
const closers: Array<() => Promise<void>> = []

beforeAll(async () => {
  nats = await startNatsServer()
  nc = await connect({ servers: nats.url })
  // Segment 0 (uploaded before transcription starts) holds only silence.
  recording = await speechRecording(ffmpeg, SENTENCES, { leadMs: 3_000 })
})
afterAll(async () => {
  for (const close of closers.reverse()) await close()
  await nc?.close()
  await nats?.stop()
})

const finals = async (store: AiStore, rtstreamId: Parameters<typeof readTranscript>[1]) =>
  (await readTranscript(store, rtstreamId, {})).segments

describe.skipIf(!festivalAvailable())("the AI pipeline with the local engine", () => {
  let deployment: Deployment
  beforeAll(async () => {
    deployment = await openDeployment(nc, "aipipe")
    closers.push(() => deployment.runtime.stop())
    const engine = new LocalEngine()
    closers.push(() => engine.close())
    const pipeline = await AiPipeline.start(nc, {
      media: deployment.media,
      store: deployment.store,
      readModel: deployment.runtime.readModel,
      engines: { local: engine },
      decoders,
      prefix: "aipipe",
    })
    closers.push(() => pipeline.stop())
  })

  it("transcribes a mic's sentences, each utterance once, with times on the recording's clock", async () => {
    const startMs = Date.now() - 60_000
    const { target } = await activeSession(deployment, recording, startMs)
    const started = await controlTranscription(
      deployment.store,
      target,
      { action: "start" },
      { offered: ["local"], default: "local" },
    )
    expect(Result.getOrThrow(started).status).toBe("active")
    // Starting again is the same start: nothing more is stored.
    const before = await deployment.store.lastSequence(target.rtstream_id)
    await controlTranscription(
      deployment.store,
      target,
      { action: "start", engine: "assemblyai" },
      { offered: ["local"], default: "local" },
    )
    expect(await deployment.store.lastSequence(target.rtstream_id)).toBe(before)

    // Segment 0 went in before the start: the lane begins at segment 1.
    for (let index = 1; index < recording.segments.length; index++) {
      await putSegment(deployment, target.session_id, recording, index, startMs)
    }
    const lastIndex = recording.segments.length - 1
    await waitFor(
      () => deployment.store.load(target.rtstream_id),
      (state) => state.nextIndex === lastIndex + 1,
      { timeoutMs: 90_000, intervalMs: 200 },
    )
    const segments = await finals(deployment.store, target.rtstream_id)
    expect(segments.map((s) => s.utterance)).toEqual(segments.map((_, i) => i + 1))
    expect(segments).toHaveLength(SENTENCES.length)
    for (const [i, sentence] of recording.sentences.entries()) {
      const heard = segments[i]
      expect(heard).toBeDefined()
      if (heard === undefined) continue
      expect(wordRecall(sentence.text, heard.text)).toBeGreaterThanOrEqual(RECALL)
      // Within 400 ms of where the sentence is in the recording (Festival pads its speech a little).
      expect(Math.abs(heard.start - (startMs + sentence.startMs))).toBeLessThan(400)
      expect(Math.abs(heard.end - (startMs + sentence.endMs))).toBeLessThan(400)
    }
  }, 120_000)

  it("batches the transcript into audio index scenes by sentences, and the rest when the audio ends", async () => {
    const startMs = Date.now() - 60_000
    const { target } = await activeSession(deployment, recording, startMs)
    await controlTranscription(
      deployment.store,
      target,
      { action: "start" },
      { offered: ["local"], default: "local" },
    )
    const bySentence = Result.getOrThrow(
      await createIndex(deployment.store, target, {
        extraction_type: "transcript",
        extraction_config: { segmenter: "sentence", segmentation_value: 1 },
      }),
    )
    // 50 words are never reached: the batch is closed by the mic's final segment.
    const byWords = Result.getOrThrow(await createIndex(deployment.store, target, {}))
    expect(byWords).toMatchObject({
      kind: "audio",
      extraction_config: { segmenter: "word", segmentation_value: 50 },
    })
    for (let index = 1; index < recording.segments.length; index++) {
      await putSegment(deployment, target.session_id, recording, index, startMs)
    }
    await waitFor(
      () => deployment.store.load(target.rtstream_id),
      (state) => state.nextIndex === recording.segments.length,
      { timeoutMs: 90_000, intervalMs: 200 },
    )
    const transcript = await finals(deployment.store, target.rtstream_id)
    const scenes = async (indexId: typeof bySentence.rtstream_index_id) =>
      Result.getOrThrow(await readScenes(deployment.store, target.rtstream_id, indexId, {}))
        .scene_index_records
    // Without a chat model a scene is its batch's transcript: here one utterance each, in order.
    const sentences = await scenes(bySentence.rtstream_index_id)
    expect(sentences.map((scene) => scene.text)).toEqual(transcript.map((segment) => segment.text))
    for (const [i, scene] of sentences.entries()) {
      expect(scene.start * 1000).toBeCloseTo(transcript[i]?.start ?? 0, -1)
      expect(scene.end * 1000).toBeCloseTo(transcript[i]?.end ?? 0, -1)
    }
    const all = await scenes(byWords.rtstream_index_id)
    expect(all.map((scene) => scene.text)).toEqual([transcript.map((segment) => segment.text).join(" ")])
  }, 120_000)
})
