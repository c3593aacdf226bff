/**
 * Request bodies, queries and response `data` of the capture REST API (see API-REFERENCE.md).
 * Field names are snake_case, as on the wire. The envelopes around them are in `HttpEnvelope`.
 */
import { Schema } from "effect"
import { CaptureSession } from "./CaptureSession.js"
import { type Channel, ChannelId, ChannelInput, ChannelType } from "./Channel.js"
import { ExportAsset, ExportMetadata } from "./ExportMetadata.js"
import { pathOf } from "./HttpRoute.js"
import { AssetId, CollectionId, SessionId, VideoId } from "./Ids.js"
import { Metadata } from "./SessionCommand.js"
import { ExportStatus, SessionStatus } from "./SessionStatus.js"

const NonEmpty = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(256))
const Url = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(2048))
const ConnectionId = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(128))
/** An end user's id: 1 to 256 characters, not only white space, no control characters (NUL…). */
const EndUserId = Schema.String.check(
  Schema.isMaxLength(256),
  Schema.isPattern(/^(?=[\s\S]*\S)\P{Cc}+$/u, {
    message: "expected 1 to 256 characters, not all white space, without control characters",
  }),
)

/** `GET /collection/{collection_id}`. */
export const CollectionView = Schema.Struct({
  id: CollectionId,
  name: Schema.String,
  description: Schema.String,
})
export type CollectionView = typeof CollectionView.Type

/** `POST /collection/{cid}/capture/session`. */
export const CreateSessionRequest = Schema.Struct({
  end_user_id: EndUserId,
  callback_url: Schema.optionalKey(Schema.NullOr(Url)),
  ws_connection_id: Schema.optionalKey(Schema.NullOr(ConnectionId)),
  metadata: Schema.optionalKey(Schema.NullOr(Metadata)),
  client_id: Schema.optionalKey(Schema.NullOr(NonEmpty)),
})
export type CreateSessionRequest = typeof CreateSessionRequest.Type

/** A page size as a query-string value: an integer from 1 to 100. */
const Limit = Schema.NumberFromString.check(
  Schema.isInt(),
  Schema.isBetween({ minimum: 1, maximum: 100 }, { message: "expected an integer from 1 to 100" }),
)

/** `GET /collection/{cid}/capture/session` query. */
export const ListSessionsQuery = Schema.Struct({
  status: Schema.optionalKey(SessionStatus),
  end_user_id: Schema.optionalKey(EndUserId),
  limit: Schema.optionalKey(Limit),
  cursor: Schema.optionalKey(NonEmpty),
})
export type ListSessionsQuery = typeof ListSessionsQuery.Type

/** A page of sessions, newest first; pass `next_page` as `cursor` for the next one. */
export const SessionList = Schema.Struct({
  sessions: Schema.Array(CaptureSession),
  next_page: Schema.NullOr(Schema.String),
})
export type SessionList = typeof SessionList.Type

/** Token lifetimes: one minute to thirty days. */
export const MAX_TOKEN_SECONDS = 30 * 24 * 60 * 60
/** `POST /capture/session/token`: `user_id` and `end_user_id` are synonyms (SDKs differ). */
export const CreateTokenRequest = Schema.Struct({
  expires_in: Schema.optionalKey(
    Schema.Int.check(
      Schema.isBetween(
        { minimum: 60, maximum: MAX_TOKEN_SECONDS },
        { message: `expected whole seconds from 60 to ${MAX_TOKEN_SECONDS}` },
      ),
    ),
  ),
  user_id: Schema.optionalKey(Schema.NullOr(EndUserId)),
  end_user_id: Schema.optionalKey(Schema.NullOr(EndUserId)),
})
export type CreateTokenRequest = typeof CreateTokenRequest.Type

export const TokenView = Schema.Struct({
  token: Schema.String,
  /** What revokes it (`DELETE /capture/session/token/{token_id}`, `capture keys revoke`). */
  token_id: Schema.String,
  expires_at: Schema.String,
  expires_in: Schema.Int,
  end_user_id: Schema.NullOr(Schema.String),
})
export type TokenView = typeof TokenView.Type

/** `DELETE /capture/session/token/{token_id}`: the token is refused from now on. */
export const RevokedTokenView = Schema.Struct({
  token_id: Schema.String,
  end_user_id: Schema.NullOr(Schema.String),
  revoked_at: Schema.String,
})
export type RevokedTokenView = typeof RevokedTokenView.Type

/** `POST /capture/session/start`: the route a recorder starts its session at. */
export const START_SESSION_ROUTE = "/capture/session/start"

/** `POST /capture/session/{session_id}/stop`: the route a recorder stops its session at. */
export const STOP_SESSION_ROUTE = "/capture/session/:session_id/stop"

/** The path that stops session `sessionId`. */
export const stopSessionPath = (sessionId: string): string =>
  pathOf(STOP_SESSION_ROUTE, { session_id: sessionId })

/**
 * What feeds a session: Capture's recorder uploading segments (the default), a publisher pushing
 * RTMP (OBS, ffmpeg) to the stream key the start answers with, or one publishing over WHIP
 * (a browser, OBS, GStreamer) to the start's `whip_url` with its bearer token.
 */
export const SessionSource = Schema.Literals(["recorder", "rtmp", "whip"])
export type SessionSource = typeof SessionSource.Type

/** A pushed source: what feeds a session other than the recorder. */
export type PushSource = Exclude<SessionSource, "recorder">

/** The channels a pushed session gets when its start names none: the pushed video and audio. */
export const pushDefaultChannels = (source: PushSource): ReadonlyArray<ChannelInput> => [
  {
    channel_id: `camera:${source}`,
    name: `${source.toUpperCase()} video`,
    type: "video",
    store: true,
    is_primary: true,
  },
  { channel_id: `mic:${source}`, name: `${source.toUpperCase()} audio`, type: "audio", store: true },
]

/** `POST /capture/session/start`: `channels` may be left out only for a pushed source. */
export const StartSessionRequest = Schema.Struct({
  session_id: SessionId,
  channels: Schema.optionalKey(Schema.Array(ChannelInput).check(Schema.isMaxLength(32))),
  source: Schema.optionalKey(Schema.NullOr(SessionSource)),
  primary_video_channel_id: Schema.optionalKey(Schema.NullOr(ChannelId)),
  ws_connection_id: Schema.optionalKey(Schema.NullOr(ConnectionId)),
  callback_url: Schema.optionalKey(Schema.NullOr(Url)),
})
export type StartSessionRequest = typeof StartSessionRequest.Type

/** Where a publisher pushes an `rtmp` session (the live-streaming platforms' `rtmp` answer). */
export const RtmpIngress = Schema.Struct({
  /** The session's id: one ingress per session. */
  ingress_id: Schema.String,
  /** The full publish URL, stream key included (`ffmpeg … -f flv <url>`). */
  url: Schema.String,
  /** Secret: it opens only this session, and only while it records. */
  stream_key: Schema.String,
})
export type RtmpIngress = typeof RtmpIngress.Type

/** The same, split the way OBS Studio asks for it (Settings → Stream → Custom). */
export const RtmpSetup = Schema.Struct({
  server: Schema.String,
  stream_key: Schema.String,
  instructions: Schema.Struct({ step1: Schema.String, step2: Schema.String, step3: Schema.String }),
})
export type RtmpSetup = typeof RtmpSetup.Type

/** Where a WHIP publisher (RFC 9725) posts its SDP offer for a `whip` session, and with what. */
export const WhipIngress = Schema.Struct({
  /** `POST` the offer here (`application/sdp`). */
  whip_url: Schema.String,
  /** Secret: `Authorization: Bearer <token>`; it opens only this session, and only while it records. */
  whip_bearer_token: Schema.String,
})
export type WhipIngress = typeof WhipIngress.Type

export const StartSessionView = Schema.Struct({
  session_id: SessionId,
  status: SessionStatus,
  /** `source: "rtmp"` only. */
  rtmp: Schema.optionalKey(RtmpIngress),
  rtmp_setup: Schema.optionalKey(RtmpSetup),
  /** `source: "whip"` only. */
  whip_url: Schema.optionalKey(Schema.String),
  whip_bearer_token: Schema.optionalKey(Schema.String),
  /** Pushed sources only: the live HLS playlist of the pushed video (signed; it lists segments as they come). */
  hls_url: Schema.optionalKey(Schema.String),
})
export type StartSessionView = typeof StartSessionView.Type

/** The code a client reports a failure with: lower_snake_case, like the server's own codes. */
const ReportedFailureCode = Schema.String.check(
  Schema.isPattern(/^[a-z][a-z0-9_]{0,63}$/, {
    message: "expected a lower_snake_case code of at most 64 characters, like capture_failed",
  }),
)

/**
 * `POST /capture/session/{session_id}/fail`: the recorder cannot capture any stored channel; the
 * session fails with this reason (`error` in the session view, the webhook and the WebSocket).
 */
export const FailSessionRequest = Schema.Struct({
  error: Schema.Struct({
    code: ReportedFailureCode,
    message: Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(2048)),
  }),
})
export type FailSessionRequest = typeof FailSessionRequest.Type

/** The code the recorder fails a session with when every stored channel's capture gave up. */
export const CAPTURE_FAILED = "capture_failed"

/** `POST /capture/session/{session_id}/fail`: the route a recorder fails its session at. */
export const FAIL_SESSION_ROUTE = "/capture/session/:session_id/fail"

/** The path that fails session `sessionId`. */
export const failSessionPath = (sessionId: string): string =>
  pathOf(FAIL_SESSION_ROUTE, { session_id: sessionId })

/** A channel in the streaming view, with its live URL while it is being recorded. */
export const StreamingChannel = Schema.Struct({
  channel_id: ChannelId,
  name: Schema.String,
  type: ChannelType,
  store: Schema.Boolean,
  is_primary: Schema.Boolean,
  /** Live HLS playlist of the channel; null until its first segment arrives. */
  stream_url: Schema.NullOr(Schema.String),
})
export type StreamingChannel = typeof StreamingChannel.Type

/** `GET /capture/session/{session_id}`: what a client streams and where to watch it. */
export const StreamingView = Schema.Struct({
  session_id: SessionId,
  status: SessionStatus,
  channels: Schema.Array(StreamingChannel),
})
export type StreamingView = typeof StreamingView.Type

/** The streaming view of a channel, before its URL is known. */
export const streamingChannel = (channel: Channel, stream_url: string | null): StreamingChannel => ({
  channel_id: channel.channel_id,
  name: channel.name,
  type: channel.type,
  store: channel.store,
  is_primary: channel.is_primary,
  stream_url,
})

/** `POST /collection/{cid}/capture/session/{sid}/export`. */
export const ExportRequest = Schema.Struct({
  video_channel_id: Schema.optionalKey(Schema.NullOr(ChannelId)),
  ws_connection_id: Schema.optionalKey(Schema.NullOr(ConnectionId)),
})
export type ExportRequest = typeof ExportRequest.Type

/**
 * `POST /capture/session/{id}/pause` and `/resume`: the channels to pause or resume (all when
 * absent) and the recorder's clock at that moment (the clock its segments are dated by).
 */
export const PauseRequest = Schema.Struct({
  channel_ids: Schema.optionalKey(Schema.Array(ChannelId).check(Schema.isMaxLength(64))),
  at_ms: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
})
export type PauseRequest = typeof PauseRequest.Type

/** `POST /capture/session/{session_id}/pause`: the route a recorder pauses channels at. */
export const PAUSE_CHANNELS_ROUTE = "/capture/session/:session_id/pause"

/** `POST /capture/session/{session_id}/resume`: the route a recorder resumes channels at. */
export const RESUME_CHANNELS_ROUTE = "/capture/session/:session_id/resume"

/** The path that pauses channels of session `sessionId`. */
export const pauseChannelsPath = (sessionId: string): string =>
  pathOf(PAUSE_CHANNELS_ROUTE, { session_id: sessionId })

/** The path that resumes channels of session `sessionId`. */
export const resumeChannelsPath = (sessionId: string): string =>
  pathOf(RESUME_CHANNELS_ROUTE, { session_id: sessionId })

export const ExportView = Schema.Struct({
  session_id: SessionId,
  video_channel_id: Schema.NullOr(ChannelId),
  export_status: ExportStatus,
  video_id: Schema.NullOr(VideoId),
  stream_url: Schema.NullOr(Schema.String),
  player_url: Schema.NullOr(Schema.String),
})
export type ExportView = typeof ExportView.Type

/** `GET /collection/{cid}/video/{video_id}`: an exported (muxed) video, VideoDB's video object. */
export const VideoView = Schema.Struct({
  id: VideoId,
  collection_id: CollectionId,
  name: Schema.String,
  /** Seconds. */
  length: Schema.Finite,
  stream_url: Schema.String,
  player_url: Schema.String,
  /** The single-file MP4. */
  download_url: Schema.String,
  metadata: ExportMetadata,
})
export type VideoView = typeof VideoView.Type

/**
 * A channel's raw asset (an rtstream's `exported_asset_id`): `GET /collection/{cid}/video/{m-…}`
 * for a display or camera, `GET /collection/{cid}/audio/{a-…}` for a mic or system audio.
 */
export const RawAssetView = Schema.Struct({
  id: AssetId,
  collection_id: CollectionId,
  session_id: SessionId,
  /** The export that made it. */
  video_id: VideoId,
  channel_id: ChannelId,
  type: ChannelType,
  name: Schema.String,
  /** Seconds. */
  length: Schema.Finite,
  /** The asset's file (MP4 for video, M4A for audio), byte ranges supported. */
  download_url: Schema.String,
  metadata: ExportAsset,
})
export type RawAssetView = typeof RawAssetView.Type

/** `GET /collection/{cid}/websocket`. */
export const WebSocketUrlView = Schema.Struct({ websocket_url: Schema.String })
export type WebSocketUrlView = typeof WebSocketUrlView.Type
