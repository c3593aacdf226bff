/**
 * Lifecycle events: the user-visible `capture_session.*` events, one per status a session enters.
 * The same seven shapes travel in webhooks (`WebhookEnvelope`) and on the WebSocket's
 * `capture_session` channel (`WebSocketMessage`); `lifecycleUnion` builds each variant.
 */
import { Schema } from "effect"
import { ChannelId, ChannelType } from "./Channel.js"
import { ExportedAssetIds } from "./ExportMetadata.js"
import { EventId, RtstreamId, SessionId, VideoId } from "./Ids.js"
import { FailureReason } from "./SessionCommand.js"
import type { SessionStatus } from "./SessionStatus.js"

/** An ISO-8601 date-time with seconds and a zone, e.g. `2026-01-20T12:34:56.789Z`. */
export const IsoTimestamp = Schema.String.check(
  Schema.isPattern(
    /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$/,
    { message: "expected an ISO-8601 timestamp like 2026-01-20T12:34:56Z" },
  ),
)
export type IsoTimestamp = typeof IsoTimestamp.Type

/** Every lifecycle event name, in lifecycle order. */
export const LIFECYCLE_EVENT_NAMES = [
  "capture_session.created",
  "capture_session.starting",
  "capture_session.active",
  "capture_session.stopping",
  "capture_session.stopped",
  "capture_session.exported",
  "capture_session.failed",
] as const satisfies ReadonlyArray<`capture_session.${SessionStatus}`>

/** A lifecycle event name: `capture_session.<status>`. */
export const LifecycleEventName = Schema.Literals(LIFECYCLE_EVENT_NAMES)
export type LifecycleEventName = typeof LifecycleEventName.Type

/** The event announcing that a session entered `status`. */
export const lifecycleEventName = <S extends SessionStatus>(status: S): `capture_session.${S}` =>
  `capture_session.${status}`

/** `data` of created, starting, stopping and stopped: an empty object. */
export const EmptyEventData = Schema.Struct({})
export type EmptyEventData = typeof EmptyEventData.Type

/** A stream announced by `capture_session.active`; receivers start AI pipelines on it. */
export const LifecycleRtstream = Schema.Struct({
  rtstream_id: RtstreamId,
  name: Schema.String,
  media_types: Schema.Array(ChannelType),
})
export type LifecycleRtstream = typeof LifecycleRtstream.Type

/** `data` of `capture_session.active`. */
export const ActiveEventData = Schema.Struct({ rtstreams: Schema.Array(LifecycleRtstream) })
export type ActiveEventData = typeof ActiveEventData.Type

/**
 * `data` of `capture_session.exported`: the reference's `exported_video_id`, `stream_url` and
 * `player_url`, plus `video_channel_id` (null for an audio-only export) and, when the export named
 * them, `exported_asset_ids`: channel → asset id of its raw assets (each rtstream's
 * `exported_asset_id`). Receivers that know only the reference's fields ignore the others.
 */
export const ExportedEventData = Schema.Struct({
  exported_video_id: VideoId,
  stream_url: Schema.String,
  player_url: Schema.String,
  video_channel_id: Schema.NullOr(ChannelId),
  exported_asset_ids: Schema.optionalKey(ExportedAssetIds),
})
export type ExportedEventData = typeof ExportedEventData.Type

/** `data` of `capture_session.failed`. */
export const FailedEventData = Schema.Struct({ error: FailureReason })
export type FailedEventData = typeof FailedEventData.Type

const variant = <
  const S extends SessionStatus,
  D extends Schema.Top,
  const Head extends Schema.Struct.Fields,
  const Tail extends Schema.Struct.Fields,
>(
  status: S,
  data: D,
  head: Head,
  tail: Tail,
) =>
  Schema.Struct({
    ...head,
    event: Schema.Literal(lifecycleEventName(status)),
    capture_session_id: SessionId,
    status: Schema.Literal(status),
    ...tail,
    data,
  })

/**
 * The seven lifecycle variants, each `{...head, event, capture_session_id, status, ...tail, data}`
 * with `event`, `status` and `data` matched; the webhook and WebSocket shapes differ only in head/tail.
 */
export const lifecycleUnion = <
  const Head extends Schema.Struct.Fields,
  const Tail extends Schema.Struct.Fields,
>(
  head: Head,
  tail: Tail,
) =>
  Schema.Union([
    variant("created", EmptyEventData, head, tail),
    variant("starting", EmptyEventData, head, tail),
    variant("active", ActiveEventData, head, tail),
    variant("stopping", EmptyEventData, head, tail),
    variant("stopped", EmptyEventData, head, tail),
    variant("exported", ExportedEventData, head, tail),
    variant("failed", FailedEventData, head, tail),
  ])

/** A lifecycle event with its stable id (receivers deduplicate by it). */
export const LifecycleEvent = lifecycleUnion(
  { id: EventId },
  { end_user_id: Schema.String, timestamp: IsoTimestamp },
)
export type LifecycleEvent = typeof LifecycleEvent.Type
/** The lifecycle event of a given name. */
export type LifecycleEventOf<N extends LifecycleEventName> = Extract<LifecycleEvent, { readonly event: N }>
