/**
 * Domain events: what happened to a session, persisted to JetStream, one subject per session.
 * A session's state is the fold of its events. Every event carries its id (stable, for
 * deduplication downstream), session id, per-session sequence, type, time and schema version.
 */
import { Schema } from "effect"
import { Channel, ChannelId, Rtstream } from "./Channel.js"
import { ExportedAssetIds } from "./ExportMetadata.js"
import { CollectionId, CommandId, EventId, RtstreamId, SessionId, VideoId } from "./Ids.js"
import { ExportAttempt, FailureReason, Metadata } from "./SessionCommand.js"
import { TimeSpan } from "./TimeSpan.js"

/** The version of the event encoding written by this code. */
export const EVENT_SCHEMA_VERSION = 1

const envelope = {
  id: EventId,
  session_id: SessionId,
  sequence: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
  time: Schema.String,
  schema_version: Schema.Int,
  command_id: CommandId,
}

const event = <const T extends string, const F extends Schema.Struct.Fields>(type: T, data: F) =>
  Schema.Struct({ type: Schema.Literal(type), ...envelope, data: Schema.Struct(data) })

export const SessionCreated = event("SessionCreated", {
  collection_id: CollectionId,
  end_user_id: Schema.String,
  account_id: Schema.String,
  client_id: Schema.optionalKey(Schema.String),
  callback_url: Schema.optionalKey(Schema.String),
  ws_connection_id: Schema.optionalKey(Schema.String),
  metadata: Metadata,
  /**
   * When the durable expiry timer fails a session never started (`expired`). Absent from
   * sessions created before expiry existed: those never expire.
   */
  expire_deadline: Schema.optionalKey(Schema.String),
})

export const SessionStarting = event("SessionStarting", {
  channels: Schema.Array(Channel),
  primary_video_channel_id: Schema.NullOr(ChannelId),
  callback_url: Schema.optionalKey(Schema.String),
  ws_connection_id: Schema.optionalKey(Schema.String),
  /** When the durable start timer fails the session if no media has arrived. */
  start_deadline: Schema.String,
})

export const SessionActivated = event("SessionActivated", {
  rtstreams: Schema.Array(Rtstream),
})

export const SessionStopping = event("SessionStopping", {
  reason: Schema.String,
  /** When the durable stop timer forces the session to `stopped`. */
  stop_deadline: Schema.String,
})

export const SessionStopped = event("SessionStopped", {
  /** `requested`, `stop_timeout`, or `aborted` (stopped before any media: nothing to export). */
  reason: Schema.String,
  /**
   * An automatic stop (silence, stop timeout) leaves a late-media window: segments whose media
   * starts before `media_before` (the stop instant) are still taken until `late_media_until`,
   * when the automatic export is asked for. Absent: no window (an explicit stop exports at once).
   */
  media_before: Schema.optionalKey(Schema.String),
  late_media_until: Schema.optionalKey(Schema.String),
})

export const ExportRequested = event("ExportRequested", {
  video_channel_id: Schema.NullOr(ChannelId),
  ws_connection_id: Schema.optionalKey(Schema.String),
  /** Asked for by the session itself on stop (the session reactor), not by a client. */
  automatic: Schema.optionalKey(Schema.Boolean),
  /** Which try this is (failed tries of this channel before it). Absent from older events: 0. */
  attempt: Schema.optionalKey(ExportAttempt),
  /**
   * The request joins the export of this channel already running (to add its WebSocket): the
   * muxer has nothing new to do.
   */
  joins_running: Schema.optionalKey(Schema.Boolean),
  /** Spans when every stored channel was paused: left out of the muxed video. */
  paused_spans: Schema.optionalKey(Schema.Array(TimeSpan)),
})

export const ChannelsPaused = event("ChannelsPaused", {
  channel_ids: Schema.Array(ChannelId),
  /** The recorder's clock when it paused (ms since the epoch). */
  at_ms: Schema.Int,
})

export const ChannelsResumed = event("ChannelsResumed", {
  channel_ids: Schema.Array(ChannelId),
  at_ms: Schema.Int,
})

/**
 * An rtstream was stopped (`PATCH /rtstream/{id}/status` `{action: "stop"}`): its status is
 * `stopped` and its real-time processing ends; the session's recording of the channel goes on.
 */
export const RtstreamStopped = event("RtstreamStopped", {
  rtstream_id: RtstreamId,
})

/** A stopped rtstream was started again while its session still captures. */
export const RtstreamStarted = event("RtstreamStarted", {
  rtstream_id: RtstreamId,
})

export const ExportCompleted = event("ExportCompleted", {
  video_channel_id: Schema.NullOr(ChannelId),
  video_id: VideoId,
  stream_url: Schema.String,
  player_url: Schema.String,
  /**
   * The export's raw assets, channel → asset id. Optional: events stored before raw assets had
   * ids lack it, and still decode and fold (their rtstreams keep `exported_asset_id` null).
   */
  asset_ids: Schema.optionalKey(ExportedAssetIds),
})

export const ExportFailed = event("ExportFailed", {
  video_channel_id: Schema.NullOr(ChannelId),
  error: FailureReason,
})

export const SessionFailed = event("SessionFailed", {
  error: FailureReason,
})

/** Every event a session persists. */
export const SessionEvent = Schema.Union([
  SessionCreated,
  SessionStarting,
  SessionActivated,
  SessionStopping,
  SessionStopped,
  ExportRequested,
  ExportCompleted,
  ExportFailed,
  SessionFailed,
  ChannelsPaused,
  ChannelsResumed,
  RtstreamStopped,
  RtstreamStarted,
])
export type SessionEvent = typeof SessionEvent.Type
export type SessionEventType = SessionEvent["type"]
/** The event of a given type. */
export type EventOf<T extends SessionEventType> = Extract<SessionEvent, { readonly type: T }>
/** An event's data, before the store gives it an envelope. */
export type EventDraft = {
  [T in SessionEventType]: { readonly type: T; readonly data: EventOf<T>["data"] }
}[SessionEventType]

/** The names of every event type this code understands. */
export const SESSION_EVENT_TYPES: ReadonlyArray<SessionEventType> = [
  "SessionCreated",
  "SessionStarting",
  "SessionActivated",
  "SessionStopping",
  "SessionStopped",
  "ExportRequested",
  "ExportCompleted",
  "ExportFailed",
  "SessionFailed",
  "ChannelsPaused",
  "ChannelsResumed",
  "RtstreamStopped",
  "RtstreamStarted",
]
