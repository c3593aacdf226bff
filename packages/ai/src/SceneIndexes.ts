/**
 * An rtstream's indexes: a visual index of a display (scenes of `time` seconds, `frame_count`
 * frames looked at in each) or an audio index of a mic's transcript (batches of words, sentences
 * or seconds). Creating, stopping, starting and re-prompting one are decided against the
 * rtstream's AI state (pure `decide…` functions) and stored on its subject with the last sequence
 * they saw, like transcription's start and stop; their results (`SceneIndexed`) are read back as
 * pages of scenes.
 */
import { isWrongLastSequence, type SpanParent } from "@capture/jetstream"
import {
  type AiEvent,
  type AiRouting,
  type CaptureError,
  captureError,
  channelKind,
  type IndexBatch,
  makeIdBody,
  newSceneIndexId,
  type RtstreamId,
  type SceneIndexId,
  type SceneIndexKind,
  type SceneIndexRequest,
  type SceneIndexStatusRequest,
  type SceneIndexView,
  type ScenePage,
  type SceneRecord,
  type ScenesQuery,
} from "@capture/protocol"
import { Result } from "effect"
import { type ChatModelChoice, resolveChatModel } from "./engines/ChatModel.js"
import type { AiStore } from "./store/AiStore.js"
import { emptyRtstreamAi, foldAiEvent, type RtstreamAi, type SceneIndexState } from "./store/RtstreamAi.js"
import { controlTranscription, type EngineChoice, type TranscriptionTarget } from "./Transcription.js"

/** Defaults and bounds of `extraction_config` (docs/ai.md). */
export const VISUAL_BATCH = {
  time: { default: 2, min: 1, max: 600 },
  frameCount: { default: 5, min: 1, max: 30 },
}
export const AUDIO_BATCH = {
  default: { type: "word", value: 50 } as const,
  word: { min: 5, max: 5_000 },
  sentence: { min: 1, max: 200 },
  time: { min: 5, max: 3_600 },
}
export const DEFAULT_VISUAL_PROMPT = "Describe the scene"
export const DEFAULT_AUDIO_PROMPT = "Summarize what is said"

/** What an rtstream's channel can be indexed by: a display's frames or a mic's transcript. */
export const indexKindOf = (target: TranscriptionTarget): SceneIndexKind => {
  const kind = channelKind(target.channel_id)
  return kind === "mic" || kind === "system_audio" ? "audio" : "visual"
}

const invalid = (field: string, message: string): CaptureError =>
  captureError("invalid_field", message, { field })

const integerIn = (
  config: { readonly [key: string]: unknown },
  key: string,
  bounds: { readonly default?: number; readonly min: number; readonly max: number },
): Result.Result<number, CaptureError> => {
  const value = config[key]
  if (value === undefined || value === null) {
    return bounds.default === undefined
      ? Result.fail(
          captureError("missing_field", `extraction_config.${key} is required`, {
            field: `extraction_config.${key}`,
          }),
        )
      : Result.succeed(bounds.default)
  }
  if (typeof value !== "number" || !Number.isInteger(value) || value < bounds.min || value > bounds.max) {
    return Result.fail(
      invalid(
        `extraction_config.${key}`,
        `expected an integer from ${bounds.min} to ${bounds.max}, got ${JSON.stringify(value)}`,
      ),
    )
  }
  return Result.succeed(value)
}

/** The batches a request asks for, checked against the rtstream's kind. */
export const batchOf = (
  kind: SceneIndexKind,
  request: SceneIndexRequest,
  rtstreamId: RtstreamId,
): Result.Result<IndexBatch, CaptureError> => {
  const type = request.extraction_type ?? (kind === "visual" ? "time_based" : "transcript")
  const config = request.extraction_config ?? {}
  if (kind === "visual") {
    if (type === "transcript") {
      return Result.fail(
        captureError(
          "rtstream_not_audio",
          `rtstream ${rtstreamId} is a display: it has no transcript to index`,
          {
            field: "rtstream_id",
          },
        ),
      )
    }
    const time = integerIn(config, "time", { ...VISUAL_BATCH.time })
    if (Result.isFailure(time)) return Result.fail(time.failure)
    const frames = integerIn(config, "frame_count", { ...VISUAL_BATCH.frameCount })
    if (Result.isFailure(frames)) return Result.fail(frames.failure)
    return Result.succeed({ type: "time", time: time.success, frame_count: frames.success })
  }
  if (type !== "transcript") {
    return Result.fail(
      captureError(
        "rtstream_not_video",
        `rtstream ${rtstreamId} is audio: it has no frames to index (${type})`,
        {
          field: "rtstream_id",
        },
      ),
    )
  }
  const segmenter = config.segmenter ?? AUDIO_BATCH.default.type
  if (segmenter !== "word" && segmenter !== "sentence" && segmenter !== "time") {
    return Result.fail(
      invalid(
        "extraction_config.segmenter",
        `expected "word", "sentence" or "time", got ${JSON.stringify(segmenter)}`,
      ),
    )
  }
  const value = integerIn(config, "segmentation_value", {
    ...AUDIO_BATCH[segmenter],
    ...(config.segmenter === undefined ? { default: AUDIO_BATCH.default.value } : {}),
  })
  if (Result.isFailure(value)) return Result.fail(value.failure)
  return Result.succeed({ type: segmenter, value: value.success })
}

const routingOf = (target: TranscriptionTarget, socket: string | null): AiRouting => ({
  account_id: target.account_id,
  end_user_id: target.end_user_id,
  collection_id: target.collection_id,
  ws_connection_id: socket,
  rtstream_name: target.rtstream_name,
})

const envelopeOf = (target: TranscriptionTarget, now: Date) => ({
  rtstream_id: target.rtstream_id,
  session_id: target.session_id,
  channel_id: target.channel_id,
  time: now.toISOString(),
})

/** No chat model: `model_name` may be absent or a VideoDB tier. */
export const NO_CHAT_MODELS: ChatModelChoice = { default: null, allowed: new Map() }

/** The event creating an index, or the refusal (wrong kind of rtstream, batches out of range, …). */
export const decideCreateIndex = (
  state: RtstreamAi,
  target: TranscriptionTarget,
  request: SceneIndexRequest,
  now: Date = new Date(),
  indexId: SceneIndexId = newSceneIndexId(),
  models: ChatModelChoice = NO_CHAT_MODELS,
): Result.Result<AiEvent, CaptureError> => {
  const kind = indexKindOf(target)
  const chatModel = resolveChatModel(request.model_name, models)
  if (Result.isFailure(chatModel)) return Result.fail(chatModel.failure)
  const batch = batchOf(kind, request, target.rtstream_id)
  if (Result.isFailure(batch)) return Result.fail(batch.failure)
  const prompt = request.prompt ?? (kind === "visual" ? DEFAULT_VISUAL_PROMPT : DEFAULT_AUDIO_PROMPT)
  if (prompt.trim() === "") return Result.fail(invalid("prompt", "prompt is empty"))
  const extractionType = request.extraction_type ?? (kind === "visual" ? "time_based" : "transcript")
  const extractionConfig =
    batch.success.type === "time" && "time" in batch.success
      ? { time: batch.success.time, frame_count: batch.success.frame_count }
      : "value" in batch.success
        ? { segmenter: batch.success.type, segmentation_value: batch.success.value }
        : {}
  return Result.succeed({
    type: "SceneIndexCreated",
    id: `${target.rtstream_id}/index/${indexId}/created`,
    ...envelopeOf(target, now),
    data: {
      index_id: indexId,
      kind,
      name: request.name ?? `${kind} index ${state.indexes.length + 1}`,
      prompt,
      extraction_type: extractionType,
      extraction_config: extractionConfig,
      batch: batch.success,
      model_name: request.model_name ?? null,
      chat_model: chatModel.success,
      routing: routingOf(target, request.ws_connection_id ?? null),
    },
  })
}

const indexNotFound = (indexId: string): CaptureError =>
  captureError("index_not_found", `no index ${indexId} on this rtstream`, { field: "index_id" })

/** The index of `state` named `indexId`. */
export const findIndex = (state: RtstreamAi, indexId: string): SceneIndexState | undefined =>
  state.indexes.find((index) => index.indexId === indexId)

/** The event a start, stop or new prompt stores, or null when it changes nothing. */
export const decideChangeIndex = (
  state: RtstreamAi,
  target: TranscriptionTarget,
  indexId: string,
  change: SceneIndexStatusRequest | { readonly prompt: string },
  now: Date = new Date(),
): Result.Result<AiEvent | null, CaptureError> => {
  const index = findIndex(state, indexId)
  if (index === undefined) return Result.fail(indexNotFound(indexId))
  const envelope = envelopeOf(target, now)
  const id = `${target.rtstream_id}/index/${index.indexId}/change/${makeIdBody(now.getTime())}`
  if ("prompt" in change) {
    if (change.prompt.trim() === "") return Result.fail(invalid("prompt", "prompt is empty"))
    if (change.prompt === index.prompt) return Result.succeed(null)
    return Result.succeed({
      type: "SceneIndexChanged",
      id,
      ...envelope,
      data: { index_id: index.indexId, prompt: change.prompt },
    })
  }
  const status = change.action === "start" ? "connected" : "stopped"
  if (status === index.status) return Result.succeed(null)
  return Result.succeed({
    type: "SceneIndexChanged",
    id,
    ...envelope,
    data: { index_id: index.indexId, status },
  })
}

/** An index as the API shows it. */
export const sceneIndexView = (rtstreamId: RtstreamId, index: SceneIndexState): SceneIndexView => ({
  rtstream_index_id: index.indexId,
  rtstream_id: rtstreamId,
  kind: index.kind,
  extraction_type: index.extractionType,
  extraction_config: index.extractionConfig,
  prompt: index.prompt,
  name: index.name,
  model_name: index.modelName,
  status: index.status,
})

/**
 * Decides against the rtstream's state and stores the outcome; a concurrent writer makes it decide
 * again. Returns the state after it (unchanged when nothing was stored). `parent` (tracing on: the
 * span of the request that asked) is what the stored event's trace continues.
 */
export const storeDecision = async (
  store: AiStore,
  rtstreamId: RtstreamId,
  decide: (state: RtstreamAi) => Result.Result<AiEvent | null, CaptureError>,
  parent?: SpanParent,
): Promise<Result.Result<RtstreamAi, CaptureError>> => {
  let state = await store.load(rtstreamId)
  for (let attempt = 1; ; attempt++) {
    const decided = decide(state)
    if (Result.isFailure(decided)) return Result.fail(decided.failure)
    if (decided.success === null) return Result.succeed(state)
    try {
      await store.append(decided.success, state.lastSequence, parent)
      return Result.succeed(await store.catchUp(state))
    } catch (error) {
      if (!isWrongLastSequence(error) || attempt >= 8) throw error
      state = await store.catchUp(state)
    }
  }
}

/** Creates an index (its `model_name` checked against `models`); its view, or the refusal. */
export const createIndex = async (
  store: AiStore,
  target: TranscriptionTarget,
  request: SceneIndexRequest,
  models: ChatModelChoice = NO_CHAT_MODELS,
  parent?: SpanParent,
): Promise<Result.Result<SceneIndexView, CaptureError>> => {
  const indexId = newSceneIndexId()
  const stored = await storeDecision(
    store,
    target.rtstream_id,
    (state) => decideCreateIndex(state, target, request, new Date(), indexId, models),
    parent,
  )
  if (Result.isFailure(stored)) return Result.fail(stored.failure)
  const index = findIndex(stored.success, indexId)
  if (index === undefined) throw new Error(`index ${indexId} was stored but is not in the rtstream's history`)
  return Result.succeed(sceneIndexView(target.rtstream_id, index))
}

/** Starts, stops or re-prompts an index; its view after, or the refusal. */
export const changeIndex = async (
  store: AiStore,
  target: TranscriptionTarget,
  indexId: string,
  change: SceneIndexStatusRequest | { readonly prompt: string },
  parent?: SpanParent,
): Promise<Result.Result<SceneIndexView, CaptureError>> => {
  const stored = await storeDecision(
    store,
    target.rtstream_id,
    (state) => decideChangeIndex(state, target, indexId, change),
    parent,
  )
  if (Result.isFailure(stored)) return Result.fail(stored.failure)
  const index = findIndex(stored.success, indexId)
  if (index === undefined) return Result.fail(indexNotFound(indexId))
  return Result.succeed(sceneIndexView(target.rtstream_id, index))
}

/**
 * What stopping an rtstream means for its AI: its transcription stops (gracefully: the open
 * utterance is finished) and each running index stops, as if each had been stopped on its own.
 * Starting the rtstream again starts none of them; each is started again on its own route.
 */
export const stopRtstreamAi = async (
  store: AiStore,
  target: TranscriptionTarget,
  choice: EngineChoice,
  parent?: SpanParent,
): Promise<void> => {
  const state = await store.load(target.rtstream_id)
  if (state.transcription.status === "active") {
    const stopped = await controlTranscription(store, target, { action: "stop" }, choice, parent)
    if (Result.isFailure(stopped)) throw new Error(`stopping transcription: ${stopped.failure.message}`)
  }
  for (const index of state.indexes) {
    if (index.status !== "connected") continue
    const stopped = await changeIndex(store, target, index.indexId, { action: "stop" }, parent)
    if (Result.isFailure(stopped))
      throw new Error(`stopping index ${index.indexId}: ${stopped.failure.message}`)
  }
}

/** The rtstream's indexes, oldest first. */
export const listIndexes = async (
  store: AiStore,
  rtstreamId: RtstreamId,
): Promise<ReadonlyArray<SceneIndexView>> =>
  (await store.load(rtstreamId)).indexes.map((index) => sceneIndexView(rtstreamId, index))

/** One index, or `index_not_found`. */
export const getIndex = async (
  store: AiStore,
  rtstreamId: RtstreamId,
  indexId: string,
): Promise<Result.Result<SceneIndexView, CaptureError>> => {
  const index = findIndex(await store.load(rtstreamId), indexId)
  return index === undefined
    ? Result.fail(indexNotFound(indexId))
    : Result.succeed(sceneIndexView(rtstreamId, index))
}

/** Unix seconds from a query time: values of 10^11 and more are epoch ms. */
const querySeconds = (value: number): number => (value >= 1e11 ? value / 1000 : value)

/** A page of an index's scenes, oldest first; `start`/`end` keep the scenes overlapping that range. */
export const readScenes = async (
  store: AiStore,
  rtstreamId: RtstreamId,
  indexId: string,
  query: ScenesQuery,
): Promise<Result.Result<ScenePage, CaptureError>> => {
  const page = query.page ?? 1
  const pageSize = query.page_size ?? 100
  const from = query.start === undefined ? undefined : querySeconds(query.start)
  const to = query.end === undefined ? undefined : querySeconds(query.end)
  if (from !== undefined && to !== undefined && to < from) {
    return Result.fail(captureError("invalid_time_range", "end is before start", { field: "end" }))
  }
  const scenes: Array<SceneRecord> = []
  let state = emptyRtstreamAi(rtstreamId)
  for await (const stored of store.read(rtstreamId)) {
    state = foldAiEvent(state, stored.event, stored.streamSequence)
    const event = stored.event
    if (event.type !== "SceneIndexed" || event.data.index_id !== indexId) continue
    const start = event.data.start / 1000
    const end = event.data.end / 1000
    if (from !== undefined && end < from) continue
    if (to !== undefined && start > to) continue
    scenes.push({
      id: `${indexId}-${event.data.scene}`,
      start,
      end,
      text: event.data.text,
      description: event.data.text,
      metadata: {
        scene: event.data.scene,
        engine: event.data.engine,
        // The alerts this result fired (once each, stored with it).
        alerts: (event.data.alerts ?? []).map((alert) => ({
          alert_id: alert.alert_id,
          event_id: alert.event_id,
          label: alert.label,
          confidence: alert.confidence,
          explanation: alert.explanation,
        })),
      },
    })
  }
  const index = findIndex(state, indexId)
  if (index === undefined) return Result.fail(indexNotFound(indexId))
  const offset = (page - 1) * pageSize
  return Result.succeed({
    rtstream_index_id: index.indexId,
    scene_index_records: scenes.slice(offset, offset + pageSize),
    page,
    page_size: pageSize,
    next_page: offset + pageSize < scenes.length ? page + 1 : null,
    total: scenes.length,
  })
}
