/**
 * What the AI pipeline stores about one rtstream: its transcription being started and stopped (a
 * decided fact every worker reads), each transcript segment it produced, the lane position after
 * each media segment, and failures an engine could not get past. One JetStream stream
 * (`CAPTURE_AI`), one subject per rtstream (`capture.ai.<rtstream_id>`): appends expect the
 * subject's last sequence, so two workers (or a worker and the API) never fork an rtstream's history.
 * Each event's `id` is its `Nats-Msg-Id`, derived from what produced it (rtstream + segment or
 * utterance), so a redelivered segment stores nothing twice.
 */
import { Schema } from "effect"
import { ChannelId } from "./Channel.js"
import { AlertId, CollectionId, DetectionEventId, RtstreamId, SceneIndexId, SessionId } from "./Ids.js"

/** The transcription engines a server may offer. */
export const TranscriptionEngineName = Schema.Literals(["local", "openai"])
export type TranscriptionEngineName = typeof TranscriptionEngineName.Type

/** Where an rtstream's results go on the WebSocket (copied onto each result: routing needs no lookup). */
export const AiRouting = Schema.Struct({
  account_id: Schema.String,
  /** The session's end user: a socket opened for another end user hears none of it. */
  end_user_id: Schema.String,
  collection_id: CollectionId,
  /** The socket named by the call that started the work; null: only the collection's sockets. */
  ws_connection_id: Schema.NullOr(Schema.String),
  /** The rtstream's name on the wire (`rtstream_name`). */
  rtstream_name: Schema.String,
})
export type AiRouting = typeof AiRouting.Type

const envelope = {
  /** Stable: the event's `Nats-Msg-Id`. */
  id: Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(256)),
  rtstream_id: RtstreamId,
  session_id: SessionId,
  channel_id: ChannelId,
  /** ISO time it was stored. */
  time: Schema.String,
}

const event = <const T extends string, const F extends Schema.Struct.Fields>(type: T, data: F) =>
  Schema.Struct({ type: Schema.Literal(type), ...envelope, data: Schema.Struct(data) })

export const TranscriptionStarted = event("TranscriptionStarted", {
  engine: TranscriptionEngineName,
  /** The engine the caller asked for, as given (e.g. VideoDB's default `assemblyai`). */
  requested_engine: Schema.NullOr(Schema.String),
  routing: AiRouting,
  /**
   * `recording`: the channel's stored segments are transcribed after the fact (an export's spoken
   * words asked for when nothing was transcribed live), by a `RecordingTranscriptionJob`. Absent: live.
   */
  source: Schema.optionalKey(Schema.Literals(["live", "recording"])),
})

export const TranscriptionStopped = event("TranscriptionStopped", {
  /** `graceful`: the open utterance is finished first; `force`: dropped. */
  mode: Schema.Literals(["graceful", "force"]),
})

/** A transcript segment: a whole utterance (`is_final`) or the words so far of an open one. */
export const TranscriptProduced = event("TranscriptProduced", {
  /** 1, 2, … per rtstream: the utterance this text belongs to. */
  utterance: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
  is_final: Schema.Boolean,
  text: Schema.String,
  /** Epoch ms on the recording's clock (segment `start_ms` + offset). */
  start: Schema.Finite,
  end: Schema.Finite,
  engine: TranscriptionEngineName,
  /** The media segment whose processing produced it. */
  segment_index: Schema.Int,
  routing: AiRouting,
})

/** An utterance still open at the end of a segment: where its audio starts. */
export const OpenUtterance = Schema.Struct({
  /** The segment holding its first sample. */
  from_index: Schema.Int,
  /** Its first sample, epoch ms. */
  start_ms: Schema.Finite,
  /** Milliseconds of speech heard in it so far (for the interim cadence). */
  spoken_ms: Schema.Finite,
})
export type OpenUtterance = typeof OpenUtterance.Type

/** A frame of a display segment: decoded at `fps`, the `position`th. */
export const FrameRef = Schema.Struct({ segment: Schema.Int, fps: Schema.Finite, position: Schema.Int })
export type FrameRef = typeof FrameRef.Type

/**
 * A visual index's place in the frames of a display: its scene grid, the scene still open at the
 * end of the last segment taken (the lines read in it so far) and the last frame read (the change
 * detector's thumbnail and its text), so whichever worker takes the next segment reads only a
 * screen that changed.
 */
export const VisualLane = Schema.Struct({
  index_id: SceneIndexId,
  /** Epoch ms of scene 0's start: the first segment taken after the index started. */
  origin_ms: Schema.Finite,
  /** The open scene's number (scene n covers origin + n·time … origin + (n+1)·time). */
  scene: Schema.Int,
  /** Distinct lines read in the open scene so far, in order. */
  lines: Schema.Array(Schema.String),
  /** Base64 grey thumbnail of the last frame read; empty: none yet. */
  thumbnail: Schema.String,
  /** What the last frame read said. */
  text: Schema.String,
  /**
   * With a chat model: the open scene's frames to send (those where the screen changed), by the
   * segment and decode rate they come from, so whichever worker closes the scene finds them.
   */
  shots: Schema.optionalKey(Schema.Array(FrameRef)),
})
export type VisualLane = typeof VisualLane.Type

/** The lane moved past a media segment: every result of it is stored before this. */
export const SegmentProcessed = event("SegmentProcessed", {
  index: Schema.Int,
  /** The segment's end, epoch ms. */
  end_ms: Schema.Finite,
  open: Schema.NullOr(OpenUtterance),
  /** Utterance numbers used so far (the next segment's complete utterances are numbered after it). */
  utterances: Schema.Int,
  /** A display's visual indexes, each where this segment left it. */
  visual: Schema.optionalKey(Schema.Array(VisualLane)),
})

/** An engine kept failing on an utterance: it is skipped (the recording goes on), and sockets are told. */
export const TranscriptionFailed = event("TranscriptionFailed", {
  utterance: Schema.Int,
  segment_index: Schema.Int,
  engine: TranscriptionEngineName,
  message: Schema.String,
  start: Schema.Finite,
  end: Schema.Finite,
  routing: AiRouting,
})

/** What an index reads: a display's frames or an audio rtstream's transcript. */
export const SceneIndexKind = Schema.Literals(["visual", "audio"])
export type SceneIndexKind = typeof SceneIndexKind.Type

/** A visual index's batches: a scene every `time` seconds, `frame_count` frames looked at in each. */
export const VisualBatch = Schema.Struct({
  type: Schema.Literal("time"),
  time: Schema.Int,
  frame_count: Schema.Int,
})
/** An audio index's batches of the transcript: so many words, sentences or seconds. */
export const AudioBatch = Schema.Struct({
  type: Schema.Literals(["word", "sentence", "time"]),
  value: Schema.Int,
})
export const IndexBatch = Schema.Union([VisualBatch, AudioBatch])
export type IndexBatch = typeof IndexBatch.Type

/** An index was created on the rtstream (running from now: `status` connected). */
export const SceneIndexCreated = event("SceneIndexCreated", {
  index_id: SceneIndexId,
  kind: SceneIndexKind,
  name: Schema.String,
  prompt: Schema.String,
  /** As the caller sent them (echoed by list and get). */
  extraction_type: Schema.String,
  extraction_config: Schema.Record(Schema.String, Schema.Unknown),
  batch: IndexBatch,
  model_name: Schema.NullOr(Schema.String),
  /**
   * The chat model `model_name` resolved to when the index was created (the provider's model id);
   * absent or null: the worker's default model.
   */
  chat_model: Schema.optionalKey(Schema.NullOr(Schema.String)),
  routing: AiRouting,
})

/** An index was stopped or started again, or given a new prompt. */
export const SceneIndexChanged = event("SceneIndexChanged", {
  index_id: SceneIndexId,
  status: Schema.optionalKey(Schema.Literals(["connected", "stopped"])),
  prompt: Schema.optionalKey(Schema.String),
  /** Where results go from now on, when the call named a socket. */
  routing: Schema.optionalKey(AiRouting),
})

/** An alert fired by a result: which, how sure, and where it goes. */
export const FiredAlert = Schema.Struct({
  alert_id: AlertId,
  event_id: DetectionEventId,
  label: Schema.String,
  /** 0–1: the matcher's share of the event's terms found, or the chat model's confidence. */
  confidence: Schema.Finite,
  explanation: Schema.String,
  callback_url: Schema.NullOr(Schema.String),
  routing: AiRouting,
})
export type FiredAlert = typeof FiredAlert.Type

/** One result of an index: what a batch of frames showed, or what a batch of speech said. */
export const SceneIndexed = event("SceneIndexed", {
  index_id: SceneIndexId,
  kind: SceneIndexKind,
  index_name: Schema.String,
  /** 0, 1, … per index: the batch. */
  scene: Schema.Int,
  text: Schema.String,
  /** Epoch ms on the recording's clock. */
  start: Schema.Finite,
  end: Schema.Finite,
  /** Who described it: `local` (the text read on screen), `transcript` (the batch itself), or `chat:<model>`. */
  engine: Schema.String,
  routing: AiRouting,
  /** The index's alerts this result fired: decided with the result, so each fires once. */
  alerts: Schema.optionalKey(Schema.Array(FiredAlert)),
})

/** An alert was attached to an index: when its results match the event, it fires. */
export const AlertCreated = event("AlertCreated", {
  alert_id: AlertId,
  index_id: SceneIndexId,
  event_id: DetectionEventId,
  /** The event's label and prompt, copied: the alert decides without reading the account's events. */
  label: Schema.String,
  prompt: Schema.String,
  callback_url: Schema.NullOr(Schema.String),
  routing: AiRouting,
})

/** An alert was enabled or disabled. */
export const AlertChanged = event("AlertChanged", { alert_id: AlertId, enabled: Schema.Boolean })

/** Every event of an rtstream's AI history. */
export const AiEvent = Schema.Union([
  TranscriptionStarted,
  TranscriptionStopped,
  TranscriptProduced,
  SegmentProcessed,
  TranscriptionFailed,
  SceneIndexCreated,
  SceneIndexChanged,
  SceneIndexed,
  AlertCreated,
  AlertChanged,
])
export type AiEvent = typeof AiEvent.Type
export type AiEventType = AiEvent["type"]
export type AiEventOf<T extends AiEventType> = Extract<AiEvent, { readonly type: T }>

/**
 * Work for an AI worker: transcribe an rtstream's stored segments from its lane's position to the
 * last one, then stop (its `TranscriptionStarted` has `source: "recording"`). On its own stream
 * (`<PREFIX>_AI_JOBS`), shared by every AI worker through one durable; a job delivered twice, or
 * to two workers, stores each utterance once (the lane's appends decide).
 */
export const RecordingTranscriptionJob = Schema.Struct({
  type: Schema.Literal("TranscribeRecording"),
  rtstream_id: RtstreamId,
  session_id: SessionId,
  channel_id: ChannelId,
  /** Stream sequence of the start it carries out: its `Nats-Msg-Id` is `<rtstream>/recording/<start_sequence>`. */
  start_sequence: Schema.Int,
})
export type RecordingTranscriptionJob = typeof RecordingTranscriptionJob.Type
