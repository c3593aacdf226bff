/**
 * The capture session object clients read (`GET /collection/{cid}/capture/session/{id}`), with
 * every field of the wire format: snake_case, `id` and `session_id` both present.
 */
import { Schema } from "effect"
import { Channel, ChannelId, Rtstream, RtstreamCategory } from "./Channel.js"
import { AssetId, CollectionId, SessionId, VideoId } from "./Ids.js"
import { FailureReason, Metadata } from "./SessionCommand.js"
import { ExportStatus, RtstreamStatus, SessionStatus } from "./SessionStatus.js"

/** One video channel's export. `video_channel_id` is null for an audio-only export. */
export const ChannelExport = Schema.Struct({
  video_channel_id: Schema.NullOr(ChannelId),
  export_status: ExportStatus,
  video_id: Schema.NullOr(VideoId),
  stream_url: Schema.NullOr(Schema.String),
  player_url: Schema.NullOr(Schema.String),
  error: Schema.NullOr(FailureReason),
})
export type ChannelExport = typeof ChannelExport.Type

/**
 * A channel's real-time stream as the session shows it: the stream as `SessionActivated` recorded
 * it (`name` the capture channel, `mic:default`; `channel_id` always its category, `mic`, `screen`,
 * `system_audio` or `camera`, also for histories stored before categories), the fields VideoDB's
 * SDK reads into its `RTStream` (`collection_id`, `status`, `created_at`: when the session's first
 * media arrived and its streams were made) and the raw asset its channel was exported to.
 * `status` is `connected` while the session captures, unless the rtstream was stopped.
 * `exported_asset_id` is null until an export that made the channel's raw asset completes; then it
 * stays that first export's asset (a later export of another display has raw assets of its own,
 * listed in its metadata).
 */
export const RtstreamView = Schema.Struct({
  ...Rtstream.fields,
  channel_id: RtstreamCategory,
  collection_id: CollectionId,
  status: RtstreamStatus,
  created_at: Schema.String,
  exported_asset_id: Schema.NullOr(AssetId),
})
export type RtstreamView = typeof RtstreamView.Type

/** The session as clients see it. */
export const CaptureSession = Schema.Struct({
  id: SessionId,
  session_id: SessionId,
  collection_id: CollectionId,
  end_user_id: Schema.String,
  client_id: Schema.NullOr(Schema.String),
  status: SessionStatus,
  callback_url: Schema.NullOr(Schema.String),
  ws_connection_id: Schema.NullOr(Schema.String),
  metadata: Metadata,
  channels: Schema.Array(Channel),
  /** Channels paused now (`PauseChannels`); their time is left out of exports when all are. */
  paused_channel_ids: Schema.Array(ChannelId),
  primary_video_channel_id: Schema.NullOr(ChannelId),
  rtstreams: Schema.Array(RtstreamView),
  /**
   * Status of the session's main export: the primary display's (when it has `store: false`, the
   * export the session makes on stop: the first stored display, else audio only). `exporting`
   * from the stop that starts it, null while no export is running or requested.
   */
  export_status: Schema.NullOr(ExportStatus),
  exported_video_id: Schema.NullOr(VideoId),
  /** channel_id → video_id for every completed export. */
  exported_videos: Schema.Record(Schema.String, VideoId),
  exports: Schema.Array(ChannelExport),
  error: Schema.NullOr(FailureReason),
  stop_reason: Schema.NullOr(Schema.String),
  created_at: Schema.String,
  updated_at: Schema.String,
})
export type CaptureSession = typeof CaptureSession.Type
