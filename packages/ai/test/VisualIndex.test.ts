import type { ChannelId, CollectionId, RtstreamId, SessionId } from "@capture/protocol"
import { type NatsServerHandle, type ScreenRecording, startNatsServer, waitFor } from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  AiPipeline,
  type AiStore,
  createIndex,
  decideCreateIndex,
  emptyRtstreamAi,
  readScenes,
  TesseractReader,
  type TranscriptionTarget,
  tesseractAvailable,
} from "../src/index.js"
import {
  activeSession,
  budgetThenInvoice,
  closeAll,
  type Deployment,
  decoders,
  openDeployment,
  putSegment,
  words,
} from "./support.js"

const PREFIX = "aivisual"
let nats: NatsServerHandle
let nc: NatsConnection
let recording: ScreenRecording
const closers: Array<() => Promise<void>> = []

beforeAll(async () => {
  nats = await startNatsServer()
  nc = await connect({ servers: nats.url })
  recording = await budgetThenInvoice()
})
afterAll(() => closeAll(closers, nc, nats))

describe.skipIf(!tesseractAvailable())("a visual index with the local engine", () => {
  let deployment: Deployment
  let store: AiStore
  let pipeline: AiPipeline

  beforeAll(async () => {
    deployment = await openDeployment(nc, PREFIX)
    closers.push(() => deployment.runtime.stop())
    store = deployment.store
    pipeline = await AiPipeline.start(nc, {
      media: deployment.media,
      store,
      readModel: deployment.runtime.readModel,
      engines: {},
      textReader: new TesseractReader(),
      decoders,
      prefix: PREFIX,
    })
    closers.push(() => pipeline.stop())
  })

  const put = (sessionId: SessionId, index: number, startMs: number) =>
    putSegment(deployment, sessionId, recording, index, startMs, "display:1")

  const displaySession = async (startMs: number): Promise<TranscriptionTarget> =>
    (await activeSession(deployment, recording, startMs, "display:1")).target

  it("reads the words on screen into scenes of one batch window, reading a still screen once", async () => {
    const startMs = Date.now() - 60_000
    const target = await displaySession(startMs)
    const created = Result.getOrThrow(
      await createIndex(store, target, {
        extraction_type: "time_based",
        extraction_config: { time: 2, frame_count: 5 },
        prompt: "Describe the screen",
        name: "screen",
      }),
    )
    expect(created).toMatchObject({ status: "connected", extraction_config: { time: 2, frame_count: 5 } })
    const readsBefore = pipeline.stats.reads
    // Segment 0 went in before the index: its lane begins at segment 1.
    for (let index = 1; index < recording.segments.length; index++)
      await put(target.session_id, index, startMs)
    await waitFor(
      () => store.load(target.rtstream_id),
      (state) => state.nextIndex === recording.segments.length,
      { timeoutMs: 60_000, intervalMs: 200 },
    )
    const page = Result.getOrThrow(await readScenes(store, target.rtstream_id, created.rtstream_index_id, {}))
    // Scenes 0–3 (2 s each over segments 1–4), each stored once, in order.
    expect(page.scene_index_records.map((s) => s.metadata.scene)).toEqual([0, 1, 2, 3])
    const budget = recording.screens[1]
    const invoice = recording.screens[2]
    if (budget === undefined || invoice === undefined) throw new Error("layout")
    for (const scene of page.scene_index_records) {
      const startMsOfScene = scene.start * 1000 - startMs
      const expected = startMsOfScene < budget.endMs ? budget : invoice
      // Every scene lies within the screen it shows, one batch window long, and says its words.
      expect(startMsOfScene).toBeGreaterThanOrEqual(expected.startMs - 1)
      expect(scene.end - scene.start).toBeCloseTo(2, 1)
      for (const word of words(expected.lines.join(" "))) expect(words(scene.text)).toContain(word)
    }
    // Five frames per scene looked at, but only a changed screen read: the two screens, each once
    // (plus, at most, one more read per segment border where the encoder's picture shifts).
    expect(pipeline.stats.reads - readsBefore).toBeLessThanOrEqual(4)

    // A time range keeps the scenes overlapping it; paging goes on with next_page.
    const second = Result.getOrThrow(
      await readScenes(store, target.rtstream_id, created.rtstream_index_id, {
        start: (startMs + invoice.startMs) / 1000 + 0.5,
        end: (startMs + invoice.endMs) / 1000 - 0.5,
        page_size: 1,
      }),
    )
    expect(second.total).toBe(2)
    expect(second.next_page).toBe(2)
    expect(words(second.scene_index_records[0]?.text ?? "")).toContain("invoice")
  }, 120_000)

  it("refuses an index on the wrong kind of rtstream and batches out of range, naming the field", () => {
    const target = {
      rtstream_id: "rts-x" as RtstreamId,
      rtstream_name: "display:1",
      session_id: "cap-x" as SessionId,
      channel_id: "display:1" as ChannelId,
      account_id: "a",
      end_user_id: "u",
      collection_id: "default" as CollectionId,
    }
    const refusal = (request: Parameters<typeof decideCreateIndex>[2], on = target) => {
      const decided = decideCreateIndex(emptyRtstreamAi(on.rtstream_id), on, request)
      return Result.isFailure(decided)
        ? { code: decided.failure.error_code, field: decided.failure.field }
        : null
    }
    expect(refusal({ extraction_type: "transcript" })).toEqual({
      code: "rtstream_not_audio",
      field: "rtstream_id",
    })
    expect(refusal({ extraction_type: "time_based" }, { ...target, channel_id: "mic:default" })).toEqual({
      code: "rtstream_not_video",
      field: "rtstream_id",
    })
    expect(refusal({ extraction_config: { time: 0 } })).toEqual({
      code: "invalid_field",
      field: "extraction_config.time",
    })
    expect(refusal({ extraction_config: { time: 2, frame_count: 500 } })).toEqual({
      code: "invalid_field",
      field: "extraction_config.frame_count",
    })
    expect(refusal({ extraction_config: { time: "2" } })).toEqual({
      code: "invalid_field",
      field: "extraction_config.time",
    })
    expect(refusal({ prompt: " " })).toEqual({ code: "invalid_field", field: "prompt" })
    expect(
      refusal(
        { extraction_config: { segmenter: "word", segmentation_value: 1 } },
        { ...target, channel_id: "mic:default" },
      ),
    ).toEqual({ code: "invalid_field", field: "extraction_config.segmentation_value" })
    expect(refusal({})).toBeNull()
  })
})
