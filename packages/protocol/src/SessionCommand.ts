/**
 * Commands: what a capture session is asked to do. Each carries a command id (JetStream's
 * `Nats-Msg-Id`, so a retried command is applied once) and produces at most one event.
 */
import { Schema } from "effect"
import { ChannelId, ChannelInput } from "./Channel.js"
import { ExportedAssetIds } from "./ExportMetadata.js"
import { CollectionId, CommandId, RtstreamId, SessionId, VideoId } from "./Ids.js"

/** Why a session failed or an export did not complete. */
export const FailureReason = Schema.Struct({
  code: Schema.String,
  message: Schema.String,
})
export type FailureReason = typeof FailureReason.Type

/** Free-form metadata a client attaches to a session. */
export const Metadata = Schema.Record(Schema.String, Schema.Unknown)
export type Metadata = typeof Metadata.Type

const command = <const T extends string, const F extends Schema.Struct.Fields>(type: T, fields: F) =>
  Schema.Struct({ type: Schema.Literal(type), command_id: CommandId, session_id: SessionId, ...fields })

/** Create a session (status `created`). */
export const CreateSession = command("CreateSession", {
  collection_id: CollectionId,
  end_user_id: Schema.String.check(Schema.isMinLength(1)),
  account_id: Schema.optionalKey(Schema.String),
  client_id: Schema.optionalKey(Schema.String),
  callback_url: Schema.optionalKey(Schema.String),
  ws_connection_id: Schema.optionalKey(Schema.String),
  metadata: Schema.optionalKey(Metadata),
})

/** Start capturing the given channels (status `starting`). */
export const StartSession = command("StartSession", {
  channels: Schema.Array(ChannelInput),
  primary_video_channel_id: Schema.optionalKey(ChannelId),
  callback_url: Schema.optionalKey(Schema.String),
  ws_connection_id: Schema.optionalKey(Schema.String),
})

/** Media arrived for a channel; the first report makes a starting session `active`. */
export const ReportMediaReceived = command("ReportMediaReceived", {
  channel_id: ChannelId,
})

/** Stop capturing. Idempotent once the session is stopping or has ended. */
export const StopSession = command("StopSession", {
  reason: Schema.optionalKey(Schema.String),
})

/** Every stream is finalized: a stopping session becomes `stopped`. */
export const FinishStopping = command("FinishStopping", {})

/** Export a video channel (default: the primary display); repeated requests report status. */
export const RequestExport = command("RequestExport", {
  video_channel_id: Schema.optionalKey(ChannelId),
  ws_connection_id: Schema.optionalKey(Schema.String),
  /**
   * The export a session makes by itself when it stops, asked for by the session reactor: it
   * names no channel (the session's policy picks it) and is made at most once.
   */
  automatic: Schema.optionalKey(Schema.Boolean),
})

/** Which try of a channel's export a result answers: the number of failed tries before it. */
export const ExportAttempt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/** The muxer finished an export. */
export const CompleteExport = command("CompleteExport", {
  video_channel_id: Schema.NullOr(ChannelId),
  /** Absent from a muxer older than attempts: then it answers whatever export is running. */
  attempt: Schema.optionalKey(ExportAttempt),
  video_id: VideoId,
  stream_url: Schema.String,
  player_url: Schema.String,
  /** The export's raw assets, channel → asset id (absent from a muxer older than asset ids). */
  asset_ids: Schema.optionalKey(ExportedAssetIds),
})

/** The muxer could not export. */
export const FailExport = command("FailExport", {
  video_channel_id: Schema.NullOr(ChannelId),
  attempt: Schema.optionalKey(ExportAttempt),
  error: FailureReason,
})

/**
 * Pause channels (all of them when `channel_ids` is absent): the recorder stops capturing them,
 * the silence stop does not count them, and time when every stored channel is paused is left
 * out of the muxed video. `at_ms` is the recorder's clock (the clock its segments are dated by).
 */
export const PauseChannels = command("PauseChannels", {
  channel_ids: Schema.optionalKey(Schema.Array(ChannelId)),
  at_ms: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
})

/** Resume paused channels (all of them when `channel_ids` is absent). */
export const ResumeChannels = command("ResumeChannels", {
  channel_ids: Schema.optionalKey(Schema.Array(ChannelId)),
  at_ms: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
})

/**
 * Stop one of the session's rtstreams: its real-time side (status, AI pipelines) ends while the
 * session's recording goes on. A repeat, or any rtstream of a session that has ended, is a no-op.
 */
export const StopRtstream = command("StopRtstream", {
  rtstream_id: RtstreamId,
})

/** Start a stopped rtstream again; only while its session captures (active or stopping). */
export const StartRtstream = command("StartRtstream", {
  rtstream_id: RtstreamId,
})

/** An unrecoverable capture error. */
export const FailSession = command("FailSession", {
  error: FailureReason,
})

/**
 * The durable timers a session arms. `silence` is the session reactor's own: when it comes due
 * the reactor looks at the session's last segment (the session itself ignores it). `late_media`
 * closes the late-media window of an automatic stop and asks for the automatic export.
 */
export const TimerName = Schema.Literals(["start", "stop", "expire", "silence", "late_media"])
export type TimerName = typeof TimerName.Type

/** A durable timer came due. Ignored when the session has moved on. */
export const FireTimer = command("FireTimer", {
  timer: TimerName,
  deadline: Schema.String,
})

/** Every command a session accepts. */
export const SessionCommand = Schema.Union([
  CreateSession,
  StartSession,
  ReportMediaReceived,
  StopSession,
  FinishStopping,
  RequestExport,
  CompleteExport,
  FailExport,
  FailSession,
  FireTimer,
  PauseChannels,
  ResumeChannels,
  StopRtstream,
  StartRtstream,
])
export type SessionCommand = typeof SessionCommand.Type
export type SessionCommandType = SessionCommand["type"]
/** The command of a given type. */
export type CommandOf<T extends SessionCommandType> = Extract<SessionCommand, { readonly type: T }>
