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
import { CollectionId, RtstreamId, SessionId } from "./Ids.js"

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

/** The lane moved past a media segment: every result of it is stored before this. */
export const SegmentProcessed = event("SegmentProcessed", {
  index: Schema.Int,
  /** The segment's end, epoch ms. */
  end_ms: Schema.Finite,
  open: Schema.NullOr(OpenUtterance),
  /** Utterance numbers used so far (the next segment's complete utterances are numbered after it). */
  utterances: Schema.Int,
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

/** Every event of an rtstream's AI history. */
export const AiEvent = Schema.Union([
  TranscriptionStarted,
  TranscriptionStopped,
  TranscriptProduced,
  SegmentProcessed,
  TranscriptionFailed,
])
export type AiEvent = typeof AiEvent.Type
export type AiEventType = AiEvent["type"]
export type AiEventOf<T extends AiEventType> = Extract<AiEvent, { readonly type: T }>
