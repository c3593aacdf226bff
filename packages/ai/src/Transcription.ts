/**
 * Starting and stopping an rtstream's transcription, and reading its transcript. Start and stop
 * are decided against the rtstream's AI state (pure `decideTranscription`) and stored as events
 * on its subject with the last sequence they saw, so every worker and API process agrees on when
 * transcription runs; starting twice is one start, stopping a stopped one changes nothing.
 */

import { isWrongLastSequence, type SpanParent } from "@capture/jetstream"
import {
  type AiEvent,
  type AiRouting,
  type CaptureError,
  type ChannelId,
  type CollectionId,
  captureError,
  channelKind,
  makeIdBody,
  type RtstreamId,
  type SessionId,
  type TranscriptionEngineName,
  type TranscriptionRequest,
  type TranscriptionView,
  type TranscriptPage,
  type TranscriptQuery,
  type TranscriptSegmentView,
} from "@capture/protocol"
import { Result } from "effect"
import type { AiStore } from "./store/AiStore.js"
import { emptyRtstreamAi, foldAiEvent, type RtstreamAi } from "./store/RtstreamAi.js"

/** The rtstream a call is about, as the caller (the gateway) found and authorised it. */
export interface TranscriptionTarget {
  readonly rtstream_id: RtstreamId
  readonly rtstream_name: string
  readonly session_id: SessionId
  readonly channel_id: ChannelId
  readonly account_id: string
  readonly end_user_id: string
  readonly collection_id: CollectionId
}

/** What this server offers: its engines and the one used when a call names none. */
export interface EngineChoice {
  readonly offered: ReadonlyArray<TranscriptionEngineName>
  readonly default: TranscriptionEngineName
}

/**
 * Names other services use for their engines: VideoDB's SDK sends `assemblyai` unless told
 * otherwise. Code written against it gets the server's default engine.
 */
export const FOREIGN_ENGINE_NAMES: ReadonlyArray<string> = ["assemblyai", "deepgram", "videodb", "default"]

/** The engine a call's `engine` means here. */
export const resolveEngine = (
  requested: string | null | undefined,
  choice: EngineChoice,
): Result.Result<TranscriptionEngineName, CaptureError> => {
  const name = (requested ?? "").toLowerCase()
  if (name === "" || FOREIGN_ENGINE_NAMES.includes(name)) {
    return choice.offered.includes(choice.default)
      ? Result.succeed(choice.default)
      : Result.fail(
          captureError("unknown_engine", "no transcription engine is configured on this server", {
            field: "engine",
          }),
        )
  }
  const offered = choice.offered.find((engine) => engine === name)
  if (offered !== undefined) return Result.succeed(offered)
  const known = name === "local" || name === "openai"
  return Result.fail(
    captureError(
      "unknown_engine",
      known
        ? `engine ${name} is not configured on this server (offered: ${choice.offered.join(", ")})`
        : `unknown engine ${JSON.stringify(requested)} (offered: ${choice.offered.join(", ")})`,
      { field: "engine" },
    ),
  )
}

/** Only audio rtstreams are transcribed. */
export const isTranscribable = (channelId: ChannelId): boolean => {
  const kind = channelKind(channelId)
  return kind === "mic" || kind === "system_audio"
}

/** The view of an rtstream's transcription. */
export const transcriptionView = (state: RtstreamAi): TranscriptionView => ({
  rtstream_id: state.rtstreamId as RtstreamId,
  status: state.transcription.status,
  engine: state.transcription.engine,
  ws_connection_id: state.transcription.routing?.ws_connection_id ?? null,
})

/**
 * The event a start or stop stores, or null when it changes nothing (a repeat). Refuses a display
 * rtstream and an engine the server does not offer.
 */
export const decideTranscription = (
  state: RtstreamAi,
  target: TranscriptionTarget,
  request: TranscriptionRequest,
  choice: EngineChoice,
  now: Date = new Date(),
): Result.Result<AiEvent | null, CaptureError> => {
  if (!isTranscribable(target.channel_id)) {
    return Result.fail(
      captureError(
        "rtstream_not_audio",
        `rtstream ${target.rtstream_id} carries ${target.channel_id}: only mic and system audio are transcribed`,
        { field: "rtstream_id" },
      ),
    )
  }
  const envelope = {
    rtstream_id: target.rtstream_id,
    session_id: target.session_id,
    channel_id: target.channel_id,
    time: now.toISOString(),
  }
  const current = state.transcription
  if (request.action === "stop") {
    if (current.status !== "active") return Result.succeed(null)
    return Result.succeed({
      type: "TranscriptionStopped",
      id: `${target.rtstream_id}/stop/${makeIdBody(now.getTime())}`,
      ...envelope,
      data: { mode: request.mode ?? "graceful" },
    })
  }
  const engine = resolveEngine(request.engine, choice)
  if (Result.isFailure(engine)) return Result.fail(engine.failure)
  const routing: AiRouting = {
    account_id: target.account_id,
    end_user_id: target.end_user_id,
    collection_id: target.collection_id,
    ws_connection_id: request.ws_connection_id ?? current.routing?.ws_connection_id ?? null,
    rtstream_name: target.rtstream_name,
  }
  if (
    current.status === "active" &&
    current.engine === engine.success &&
    current.routing?.ws_connection_id === routing.ws_connection_id
  ) {
    return Result.succeed(null)
  }
  return Result.succeed({
    type: "TranscriptionStarted",
    id: `${target.rtstream_id}/start/${makeIdBody(now.getTime())}`,
    ...envelope,
    data: { engine: engine.success, requested_engine: request.engine ?? null, routing },
  })
}

/**
 * Decides a start or stop and stores it; a concurrent writer on the rtstream makes it decide again.
 * `parent` (tracing on: the span of the request that asked) is what the stored event's trace continues.
 */
export const controlTranscription = async (
  store: AiStore,
  target: TranscriptionTarget,
  request: TranscriptionRequest,
  choice: EngineChoice,
  parent?: SpanParent,
): Promise<Result.Result<TranscriptionView, CaptureError>> => {
  let state = await store.load(target.rtstream_id)
  for (let attempt = 1; ; attempt++) {
    const decided = decideTranscription(state, target, request, choice)
    if (Result.isFailure(decided)) return Result.fail(decided.failure)
    if (decided.success === null) return Result.succeed(transcriptionView(state))
    try {
      await store.append(decided.success, state.lastSequence, parent)
      return Result.succeed(transcriptionView(await store.catchUp(state)))
    } catch (error) {
      if (!isWrongLastSequence(error) || attempt >= 8) throw error
      state = await store.catchUp(state)
    }
  }
}

/**
 * Transcribes a finished channel's stored segments after the fact (an export's spoken words): when
 * it was never transcribed, stores a start with `source: "recording"` and hands the AI workers a
 * `RecordingTranscriptionJob` for it. While such a transcription runs, asking again hands the same
 * job again (one job within JetStream's duplicate window; past it the job finds its work done), so
 * a gateway that died between the two leaves nothing stuck. A channel transcribed live, or already
 * from its recording, is left as it is. Returns the channel's state after.
 */
export const transcribeRecording = async (
  store: AiStore,
  target: TranscriptionTarget,
  choice: EngineChoice,
  parent?: SpanParent,
): Promise<Result.Result<RtstreamAi, CaptureError>> => {
  let state = await store.load(target.rtstream_id)
  for (let attempt = 1; ; attempt++) {
    const current = state.transcription
    if (current.status === "active" && current.source === "recording") {
      await store.requestJob(
        {
          type: "TranscribeRecording",
          rtstream_id: target.rtstream_id,
          session_id: target.session_id,
          channel_id: target.channel_id,
          start_sequence: state.epoch,
        },
        parent,
      )
      return Result.succeed(state)
    }
    if (current.status !== "inactive") return Result.succeed(state)
    const decided = decideTranscription(state, target, { action: "start" }, choice)
    if (Result.isFailure(decided)) return Result.fail(decided.failure)
    const start = decided.success
    if (start === null || start.type !== "TranscriptionStarted") return Result.succeed(state)
    try {
      await store.append(
        { ...start, data: { ...start.data, source: "recording" } },
        state.lastSequence,
        parent,
      )
    } catch (error) {
      if (!isWrongLastSequence(error) || attempt >= 8) throw error
    }
    // Either way the next turn reads who started it, and hands its job on.
    state = await store.catchUp(state)
  }
}

/** Epoch ms from a query time: values below 10^11 are seconds (as SDKs send them). */
export const queryTimeMs = (value: number): number => (value < 1e11 ? value * 1000 : value)

/** A page of an rtstream's transcript (final segments unless asked for interim ones too), oldest first. */
export const readTranscript = async (
  store: AiStore,
  rtstreamId: RtstreamId,
  query: TranscriptQuery,
): Promise<TranscriptPage> => {
  const page = query.page ?? 1
  const pageSize = query.page_size ?? 100
  const from = query.start === undefined ? undefined : queryTimeMs(query.start)
  const to = query.end === undefined ? undefined : queryTimeMs(query.end)
  const since = query.since === undefined ? undefined : queryTimeMs(query.since)
  const interim = query.include_interim === "true"
  const segments: Array<TranscriptSegmentView> = []
  let state = emptyRtstreamAi(rtstreamId)
  for await (const stored of store.read(rtstreamId)) {
    state = foldAiEvent(state, stored.event, stored.streamSequence)
    const event = stored.event
    if (event.type !== "TranscriptProduced") continue
    const d = event.data
    if (!d.is_final && !interim) continue
    if (query.engine !== undefined && d.engine !== query.engine) continue
    if (from !== undefined && d.end < from) continue
    if (to !== undefined && d.start > to) continue
    if (since !== undefined && d.end <= since) continue
    segments.push({
      text: d.text,
      start: d.start,
      end: d.end,
      is_final: d.is_final,
      utterance: d.utterance,
      engine: d.engine,
    })
  }
  const offset = (page - 1) * pageSize
  return {
    rtstream_id: rtstreamId,
    status: state.transcription.status,
    segments: segments.slice(offset, offset + pageSize),
    page,
    page_size: pageSize,
    next_page: offset + pageSize < segments.length ? page + 1 : null,
    total: segments.length,
  }
}
