import {
  type DetectionEventView,
  newDetectionEventId,
  type RtstreamId,
  type SceneIndexId,
  type SessionId,
} from "@capture/protocol"
import {
  type ChatProvider,
  type ChatProviderRequest,
  festivalAvailable,
  type NatsServerHandle,
  type ScreenRecording,
  type SpeechRecording,
  speechRecording,
  startChatProvider,
  startNatsServer,
  startTranscriptionProvider,
  type TranscriptionProvider,
  waitFor,
} from "@capture/testkit"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  AiPipeline,
  type AiStore,
  controlTranscription,
  createAlert,
  createIndex,
  OpenAiChatModel,
  OpenAiEngine,
  ocrLines,
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
  ffmpeg,
  openDeployment,
  putSegment,
  words,
} from "./support.js"

const KEY = "sk-chat-index-key"
const MODEL = "llava-test"
const SPOKEN = "The budget discussion is next week."

let nats: NatsServerHandle
let nc: NatsConnection
let screens: ScreenRecording
let provider: ChatProvider
const closers: Array<() => Promise<void>> = []
const tesseract = new TesseractReader()

/** The text between the triple quotes of a request (what a verdict or an audio answer is about). */
const quoted = (text: string): string => /"""\n([\s\S]*)\n"""/.exec(text)?.[1] ?? ""

/**
 * A model that answers each kind of request: frames are read by tesseract and described; a
 * transcript is summarised; a verdict is JSON (in a code fence, as models often write it) that
 * says yes when the result mentions the event's label.
 */
const answer = async (request: ChatProviderRequest): Promise<string> => {
  if (request.responseFormat === "json_object") {
    const label = /^Event: (.*)$/m.exec(request.text)?.[1]?.toLowerCase() ?? "?"
    const triggered = quoted(request.text).toLowerCase().includes(label)
    return `Here is my decision:\n\`\`\`json\n${JSON.stringify({
      triggered,
      confidence: triggered ? 0.92 : 0.1,
      explanation: triggered ? `It is about ${label}.` : `Nothing about ${label}.`,
    })}\n\`\`\``
  }
  if (request.images.length > 0) {
    const lines: Array<string> = []
    for (const image of request.images) {
      for (const line of ocrLines(await tesseract.read(image.bytes)))
        if (!lines.includes(line)) lines.push(line)
    }
    return `The user is viewing: ${lines.join("; ")}`
  }
  return `They talked about this: ${quoted(request.text)}`
}

beforeAll(async () => {
  nats = await startNatsServer()
  nc = await connect({ servers: nats.url })
  provider = await startChatProvider({ apiKey: KEY, models: [MODEL], answer })
  closers.push(() => provider.close())
  screens = await budgetThenInvoice()
})
afterAll(() => closeAll(closers, nc, nats))

const putScreen = (deployment: Deployment, sessionId: SessionId, index: number, startMs: number) =>
  putSegment(deployment, sessionId, screens, index, startMs, "display:1")

/** A started session whose display has sent segment 0, and its display rtstream. */
const displaySession = async (deployment: Deployment, startMs: number): Promise<TranscriptionTarget> =>
  (await activeSession(deployment, screens, startMs, "display:1")).target

const detectionEvent = (label: string, prompt: string): DetectionEventView => ({
  event_id: newDetectionEventId(),
  event_prompt: prompt,
  label,
  created_at: new Date().toISOString(),
})

const alertOn = async (store: AiStore, target: TranscriptionTarget, indexId: SceneIndexId, label: string) =>
  Result.getOrThrow(
    await createAlert(store, target, indexId, {
      event: detectionEvent(label, `The ${label.toLowerCase()} comes up`),
      callbackUrl: null,
      wsConnectionId: null,
    }),
  ).alert_id

/** Each `SceneIndexed` of an index as stored: the scene, its engine and the alerts it fired. */
const storedScenes = async (store: AiStore, rtstreamId: RtstreamId, indexId: SceneIndexId) => {
  const scenes: Array<{ scene: number; text: string; engine: string; alerts: Array<string> }> = []
  for await (const { event } of store.read(rtstreamId)) {
    if (event.type === "SceneIndexed" && event.data.index_id === indexId) {
      scenes.push({
        scene: event.data.scene,
        text: event.data.text,
        engine: event.data.engine,
        alerts: (event.data.alerts ?? []).map((alert) => `${alert.label} ${alert.confidence}`),
      })
    }
  }
  return scenes
}

const startPipeline = async (
  deployment: Deployment,
  prefix: string,
  extra: Partial<Parameters<typeof AiPipeline.start>[1]>,
) => {
  const pipeline = await AiPipeline.start(nc, {
    media: deployment.media,
    store: deployment.store,
    readModel: deployment.runtime.readModel,
    engines: {},
    textReader: tesseract,
    decoders,
    prefix,
    engineAttempts: 2,
    engineRetryDelayMs: 50,
    interim: false,
    ...extra,
  })
  closers.push(() => pipeline.stop())
  return pipeline
}

/** A deployment under `prefix` with a pipeline on it (`extra` over the defaults), both stopped after the suite. */
const deployWithPipeline = async (prefix: string, extra: Partial<Parameters<typeof AiPipeline.start>[1]>) => {
  const deployment = await openDeployment(nc, prefix)
  closers.push(() => deployment.runtime.stop())
  const pipeline = await startPipeline(deployment, prefix, extra)
  return { deployment, pipeline }
}

/** Puts the screens' segments from `from` on, then waits until the pipeline has taken them all. */
const playScreens = async (
  deployment: Deployment,
  target: TranscriptionTarget,
  startMs: number,
  from = 1,
) => {
  for (let i = from; i < screens.segments.length; i++)
    await putScreen(deployment, target.session_id, i, startMs)
  await waitFor(
    () => deployment.store.load(target.rtstream_id),
    (state) => state.nextIndex === screens.segments.length,
    { timeoutMs: 90_000, intervalMs: 200 },
  )
}

/** A visual index of 4 s scenes seen in 2 frames each: one scene per screen of the recording. */
const wideIndex = async (store: AiStore, target: TranscriptionTarget, prompt?: string) =>
  Result.getOrThrow(
    await createIndex(store, target, {
      extraction_type: "time_based",
      extraction_config: { time: 4, frame_count: 2 },
      ...(prompt === undefined ? {} : { prompt }),
    }),
  )

describe.skipIf(!tesseractAvailable())("indexes and alerts with a chat model", () => {
  it("describes each visual scene from the frames where the screen changed, and decides alerts, each once", async () => {
    const prefix = "aichatvis"
    const chat = new OpenAiChatModel({ baseUrl: provider.baseUrl, model: MODEL, apiKey: KEY })
    const { deployment, pipeline } = await deployWithPipeline(prefix, { chat })
    const startMs = Date.now() - 60_000
    const target = await displaySession(deployment, startMs)
    const PROMPT = "Describe what the user is working on"
    const index = Result.getOrThrow(
      await createIndex(deployment.store, target, {
        extraction_type: "time_based",
        extraction_config: { time: 2, frame_count: 5 },
        prompt: PROMPT,
        name: "screen",
      }),
    )
    // Scenes of 4 s: each spans two segments; the frame that changed, taken from the first, is
    // sent when the second closes the scene.
    const wide = await wideIndex(deployment.store, target, "What is on screen?")
    const budgetAlert = await alertOn(deployment.store, target, index.rtstream_index_id, "Budget")
    await alertOn(deployment.store, target, index.rtstream_index_id, "Payroll")
    const before = provider.requests.length
    await playScreens(deployment, target, startMs)
    const requests = provider.requests.slice(before)
    expect(requests.every((request) => request.status === 200)).toBe(true)
    expect(
      requests.every((request) => request.model === MODEL && request.authorization === `Bearer ${KEY}`),
    ).toBe(true)
    const budget = screens.screens[1]
    const invoice = screens.screens[2]
    if (budget === undefined || invoice === undefined) throw new Error("layout")
    const shown = (sceneStartS: number) => (sceneStartS * 1000 - startMs < budget.endMs ? budget : invoice)

    // The 2 s index: four scenes, each described by the model from its frames, in order, once.
    const page = Result.getOrThrow(
      await readScenes(deployment.store, target.rtstream_id, index.rtstream_index_id, {}),
    )
    expect(page.scene_index_records.map((scene) => scene.metadata.scene)).toEqual([0, 1, 2, 3])
    for (const scene of page.scene_index_records) {
      expect(scene.metadata.engine).toBe(`chat:${MODEL}`)
      expect(scene.text.startsWith("The user is viewing: ")).toBe(true)
      for (const word of words(shown(scene.start).lines.join(" "))) expect(words(scene.text)).toContain(word)
    }
    // Only frames where the screen changed were sent (a still scene reuses the last description):
    // the two screens, plus at most one frame per segment border where the encoder shifts the picture.
    const described = requests.filter(
      (request) => request.images.length > 0 && request.text.startsWith(PROMPT),
    )
    expect(described.length).toBeGreaterThanOrEqual(2)
    expect(described.length).toBeLessThanOrEqual(4)
    expect(described.reduce((n, request) => n + request.images.length, 0)).toBeLessThanOrEqual(4)
    for (const request of described) expect(request.images.every((image) => image.width === 1280)).toBe(true)

    // The 4 s index: two scenes, each one request holding its screen's words.
    const widePage = Result.getOrThrow(
      await readScenes(deployment.store, target.rtstream_id, wide.rtstream_index_id, {}),
    )
    expect(widePage.scene_index_records.map((scene) => scene.metadata.scene)).toEqual([0, 1])
    for (const scene of widePage.scene_index_records) {
      for (const word of words(shown(scene.start).lines.join(" "))) expect(words(scene.text)).toContain(word)
    }
    expect(requests.filter((request) => request.text.startsWith("What is on screen?")).length).toBe(2)

    // Alerts: each scene's two alerts decided by the model once; "Budget" fires on the budget
    // scenes only, with the model's confidence; "Payroll" never.
    const stored = await storedScenes(deployment.store, target.rtstream_id, index.rtstream_index_id)
    expect(stored.map((scene) => scene.alerts)).toEqual([["Budget 0.92"], ["Budget 0.92"], [], []])
    const verdicts = requests.filter((request) => request.responseFormat === "json_object")
    expect(verdicts.length).toBe(2 * 4)
    expect(
      verdicts.every(
        (request) =>
          request.text.includes("The budget comes up") || request.text.includes("The payroll comes up"),
      ),
    ).toBe(true)
    void budgetAlert

    // A record delivered again (as after a crash before its ack): no call, nothing stored twice.
    const calls = provider.requests.length
    const scenesBefore = stored.length
    const last = screens.segments.length - 1
    const again = await deployment.media.record(target.session_id, "display:1", last)
    if (again === undefined) throw new Error("no record of the last segment")
    await nc.publish(deployment.media.topology.subject(target.session_id), JSON.stringify(again))
    const jsm = await jetstreamManager(nc)
    await waitFor(
      () => jsm.consumers.info(deployment.media.topology.stream, `${prefix}-ai`),
      (info) => info.num_pending === 0 && info.num_ack_pending === 0,
      { timeoutMs: 30_000, intervalMs: 100 },
    )
    expect(provider.requests.length).toBe(calls)
    expect((await storedScenes(deployment.store, target.rtstream_id, index.rtstream_index_id)).length).toBe(
      scenesBefore,
    )
    expect(pipeline.stats.chatFailures).toBe(0)
  }, 180_000)

  it("closes a scene on another worker with the frames the first one chose", async () => {
    const prefix = "aichathandoff"
    const chat = new OpenAiChatModel({ baseUrl: provider.baseUrl, model: MODEL, apiKey: KEY })
    const { deployment, pipeline: first } = await deployWithPipeline(prefix, { chat })
    const startMs = Date.now() - 60_000
    const target = await displaySession(deployment, startMs)
    const PROMPT = "Name the window"
    const index = await wideIndex(deployment.store, target, PROMPT)
    // Segment 1 (the budget screen's first half) is taken by the first worker, which then stops:
    // the shot it chose is only a reference in the lane.
    await putScreen(deployment, target.session_id, 1, startMs)
    await waitFor(
      () => deployment.store.load(target.rtstream_id),
      (state) => state.nextIndex === 2,
      { timeoutMs: 60_000, intervalMs: 200 },
    )
    await first.stop()
    const lane = (await deployment.store.load(target.rtstream_id)).visual[0]
    expect(lane?.shots).toEqual([{ segment: 1, fps: 1, position: 0 }])
    const before = provider.requests.length
    await startPipeline(deployment, prefix, { chat })
    await playScreens(deployment, target, startMs, 2)
    // The second worker decoded segment 1 again from the media store for scene 0's frame.
    const described = provider.requests.slice(before).filter((request) => request.text.startsWith(PROMPT))
    expect(described.map((request) => request.images.length)).toEqual([1, 1])
    const scenes = await storedScenes(deployment.store, target.rtstream_id, index.rtstream_index_id)
    expect(words(scenes[0]?.text ?? "")).toEqual(expect.arrayContaining(["quarterly", "budget", "review"]))
    expect(words(scenes[1]?.text ?? "")).toEqual(expect.arrayContaining(["invoice", "overdue", "reminder"]))
  }, 180_000)

  it("falls back to the local engines when the provider keeps failing, and does not retry a refused key", async () => {
    const down = await startChatProvider({ apiKey: KEY, models: [MODEL], answer })
    closers.push(() => down.close())
    down.setDown(true)
    const chat = new OpenAiChatModel({ baseUrl: down.baseUrl, model: MODEL, apiKey: KEY })
    const { deployment, pipeline } = await deployWithPipeline("aichatdown", { chat })
    const startMs = Date.now() - 60_000
    const target = await displaySession(deployment, startMs)
    const index = await wideIndex(deployment.store, target)
    await alertOn(deployment.store, target, index.rtstream_index_id, "Budget")
    await playScreens(deployment, target, startMs)
    // Each scene: the description (2 tries), then its alert (2 tries); then the local engines.
    const stored = await storedScenes(deployment.store, target.rtstream_id, index.rtstream_index_id)
    expect(stored.map((scene) => scene.engine)).toEqual(["local", "local"])
    expect(words(stored[0]?.text ?? "")).toContain("budget")
    expect(words(stored[1]?.text ?? "")).toContain("invoice")
    expect(stored[0]?.alerts.length).toBe(1)
    expect(stored[1]?.alerts).toEqual([])
    expect(down.requests.length).toBe(2 * 2 * 2)
    expect(down.requests.every((request) => request.status === 503)).toBe(true)
    expect(pipeline.stats.chatFailures).toBe(4)

    // A refused key is not tried again: one request per call, then the local result.
    down.setDown(false)
    const refused = new OpenAiChatModel({ baseUrl: down.baseUrl, model: MODEL, apiKey: "sk-wrong" })
    const { deployment: refusedDeployment } = await deployWithPipeline("aichatkey", { chat: refused })
    const other = await displaySession(refusedDeployment, startMs)
    const otherIndex = await wideIndex(refusedDeployment.store, other)
    const sent = down.requests.length
    await playScreens(refusedDeployment, other, startMs)
    expect(down.requests.slice(sent).map((request) => request.status)).toEqual([401, 401])
    const refusedScenes = await storedScenes(
      refusedDeployment.store,
      other.rtstream_id,
      otherIndex.rtstream_index_id,
    )
    expect(refusedScenes.map((scene) => scene.engine)).toEqual(["local", "local"])
  }, 240_000)

  describe.skipIf(!festivalAvailable())("on speech", () => {
    let recording: SpeechRecording
    let transcriber: TranscriptionProvider
    beforeAll(async () => {
      recording = await speechRecording(ffmpeg, [SPOKEN, SPOKEN], { leadMs: 3_000 })
      // Every utterance is heard as the sentence: the test is about the chat model, not the words.
      transcriber = await startTranscriptionProvider({ apiKey: KEY, transcribe: async () => SPOKEN })
      closers.push(() => transcriber.close())
    })

    it("answers an audio index's prompt over each batch of transcript, and decides its alerts", async () => {
      const chat = new OpenAiChatModel({ baseUrl: provider.baseUrl, model: MODEL, apiKey: KEY })
      const engine = new OpenAiEngine({ baseUrl: transcriber.baseUrl, model: "whisper-1", apiKey: KEY })
      const { deployment } = await deployWithPipeline("aichataudio", { chat, engines: { openai: engine } })
      const startMs = Date.now() - 60_000
      const { target } = await activeSession(deployment, recording, startMs)
      await controlTranscription(
        deployment.store,
        target,
        { action: "start", engine: "openai" },
        { offered: ["openai"], default: "openai" },
      )
      const PROMPT = "Summarise what was discussed"
      const index = Result.getOrThrow(
        await createIndex(deployment.store, target, {
          extraction_type: "transcript",
          extraction_config: { segmenter: "sentence", segmentation_value: 1 },
          prompt: PROMPT,
        }),
      )
      await alertOn(deployment.store, target, index.rtstream_index_id, "Budget")
      const before = provider.requests.length
      for (let i = 1; i < recording.segments.length; i++) {
        await putSegment(deployment, target.session_id, recording, i, startMs)
      }
      await waitFor(
        () => deployment.store.load(target.rtstream_id),
        (state) => state.nextIndex === recording.segments.length,
        { timeoutMs: 90_000, intervalMs: 200 },
      )
      const stored = await storedScenes(deployment.store, target.rtstream_id, index.rtstream_index_id)
      expect(stored.length).toBe(2)
      for (const scene of stored) {
        expect(scene).toMatchObject({
          text: `They talked about this: ${SPOKEN}`,
          engine: `chat:${MODEL}`,
          alerts: ["Budget 0.92"],
        })
      }
      const requests = provider.requests.slice(before)
      const answered = requests.filter((request) => request.responseFormat === null)
      expect(answered.length).toBe(2)
      for (const request of answered) {
        expect(request.images).toEqual([])
        expect(request.text).toContain(PROMPT)
        expect(request.text).toContain(SPOKEN)
      }
      expect(requests.filter((request) => request.responseFormat === "json_object").length).toBe(2)
    }, 180_000)
  })
})
