/**
 * The rtstream routes' requests, queries and response `data` (`/rtstream…`, see
 * RTSTREAM-REFERENCE.md): each channel of a started session is an rtstream, readable, startable
 * and stoppable, playable over any recorded time range, and exportable. Field names are snake_case,
 * as on the wire; VideoDB's SDK converts `data` to camelCase itself.
 */
import { Schema, SchemaTransformation } from "effect"
import { type CaptureSession, RtstreamView } from "./CaptureSession.js"
import { AssetId, CollectionId, RtstreamId, SessionId } from "./Ids.js"
import { RtstreamStatus } from "./SessionStatus.js"

/** `GET /rtstream`: list. */
export const RTSTREAMS_ROUTE = "/rtstream"
/** `GET /rtstream/{id}`: one rtstream. */
export const RTSTREAM_ROUTE = "/rtstream/:rtstream_id"
/** `PATCH /rtstream/{id}/status`: start or stop. */
export const RTSTREAM_STATUS_ROUTE = "/rtstream/:rtstream_id/status"
/** `GET /rtstream/{id}/stream`: `generateStream`. */
export const RTSTREAM_STREAM_ROUTE = "/rtstream/:rtstream_id/stream"
/** `POST /rtstream/{id}/export` to export, `GET` to poll (the `output_url` handed out). */
export const RTSTREAM_EXPORT_ROUTE = "/rtstream/:rtstream_id/export"

const NonEmpty = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(256))

/** A whole number in a query string, digits only (`Number("")` would be 0, `"0x10"` 16). */
const IntFromString = (digits: number, message: string) =>
  Schema.String.check(Schema.isPattern(new RegExp(`^\\d{1,${digits}}$`), { message })).pipe(
    Schema.decodeTo(Schema.Finite, SchemaTransformation.numberFromString),
  )

/** Page sizes of `GET /rtstream`: 1 to 100 (default 10, as VideoDB's SDK documents). */
export const MAX_RTSTREAM_PAGE = 100
const PageLimit = IntFromString(3, `expected an integer from 1 to ${MAX_RTSTREAM_PAGE}`).check(
  Schema.isBetween(
    { minimum: 1, maximum: MAX_RTSTREAM_PAGE },
    { message: `expected an integer from 1 to ${MAX_RTSTREAM_PAGE}` },
  ),
)
const PageOffset = IntFromString(7, "expected an integer from 0 to 9999999")

/** How `GET /rtstream` sorts: by creation time or name, `-` for descending (default `-created_at`). */
export const RtstreamOrdering = Schema.Literals(["created_at", "-created_at", "name", "-name"])
export type RtstreamOrdering = typeof RtstreamOrdering.Type

/** An rtstream as a resource (`GET /rtstream/{id}`): VideoDB's `RTStream` reads `id`. */
export const RtstreamResource = Schema.Struct({
  id: RtstreamId,
  ...RtstreamView.fields,
  session_id: SessionId,
  end_user_id: Schema.String,
  /** Whether the channel's media is kept (`store`): a `store: false` rtstream is real-time only. */
  store: Schema.Boolean,
})
export type RtstreamResource = typeof RtstreamResource.Type

/** The resource of one of `session`'s rtstreams. */
export const rtstreamResourceOf = (session: CaptureSession, rtstream: RtstreamView): RtstreamResource => ({
  id: rtstream.rtstream_id,
  ...rtstream,
  session_id: session.id,
  end_user_id: session.end_user_id,
  store: session.channels.find((c) => c.channel_id === rtstream.name)?.store ?? false,
})

/**
 * `GET /rtstream` query: VideoDB's `limit`, `offset`, `status`, `name` (the capture channel,
 * `mic:default`, or its category, `mic`), `ordering`; and Capture's `collection_id` and
 * `session_id` to list one collection's or one session's.
 */
export const ListRtstreamsQuery = Schema.Struct({
  limit: Schema.optionalKey(PageLimit),
  offset: Schema.optionalKey(PageOffset),
  status: Schema.optionalKey(RtstreamStatus),
  name: Schema.optionalKey(NonEmpty),
  ordering: Schema.optionalKey(RtstreamOrdering),
  collection_id: Schema.optionalKey(CollectionId),
  session_id: Schema.optionalKey(SessionId),
})
export type ListRtstreamsQuery = typeof ListRtstreamsQuery.Type

/** A page of rtstreams; `count` is how many match in all, `next_offset` null on the last page. */
export const RtstreamList = Schema.Struct({
  results: Schema.Array(RtstreamResource),
  count: Schema.Int,
  limit: Schema.Int,
  offset: Schema.Int,
  next_offset: Schema.NullOr(Schema.Int),
})
export type RtstreamList = typeof RtstreamList.Type

/** `PATCH /rtstream/{id}/status`. */
export const RtstreamStatusRequest = Schema.Struct({
  action: Schema.Literals(["start", "stop"]),
})
export type RtstreamStatusRequest = typeof RtstreamStatusRequest.Type

/**
 * Unix seconds in a query string, as VideoDB's SDK sends `generateStream(start, end)`: digits with
 * an optional fraction. Thirteen digits (milliseconds) are refused rather than read as year 50,000.
 */
const UnixSecondsFromString = Schema.String.check(
  Schema.isPattern(/^\d{1,11}(\.\d{1,9})?$/, {
    message: "expected Unix seconds (not milliseconds), like 1710000000 or 1710000000.5",
  }),
).pipe(Schema.decodeTo(Schema.Finite, SchemaTransformation.numberFromString))

/** What `generateStream` hands out: an HLS playlist (default) or one MP4 file. */
export const StreamFormat = Schema.Literals(["hls", "mp4"])
export type StreamFormat = typeof StreamFormat.Type

/** `GET /rtstream/{id}/stream?start&end[&format]`: a recorded time range, in Unix seconds. */
export const StreamRangeQuery = Schema.Struct({
  start: UnixSecondsFromString,
  end: UnixSecondsFromString,
  format: Schema.optionalKey(StreamFormat),
})
export type StreamRangeQuery = typeof StreamRangeQuery.Type

/**
 * A playable stream of a time range (`generateStream`). `start` and `end` are the range asked
 * for, clamped to what was recorded (Unix seconds); while the session still records, `end` may lie
 * ahead and the playlist grows until it is reached. The stream is cut at segment borders, so it
 * begins at most one segment (~2 s) before `start` and ends at most one after `end`; the signed
 * URLs stay valid for 24 hours.
 */
export const StreamRangeView = Schema.Struct({
  rtstream_id: RtstreamId,
  format: StreamFormat,
  stream_url: Schema.String,
  player_url: Schema.String,
  start: Schema.Finite,
  end: Schema.Finite,
  /** `end - start`, in seconds. */
  duration: Schema.Finite,
})
export type StreamRangeView = typeof StreamRangeView.Type

/** `POST /rtstream/{id}/export`: `name` (default `<channel> - Recording`) is echoed, not stored. */
export const RtstreamExportRequest = Schema.Struct({
  name: Schema.optionalKey(Schema.NullOr(NonEmpty)),
})
export type RtstreamExportRequest = typeof RtstreamExportRequest.Type

/** `GET /rtstream/{id}/export` (the `output_url` polled): the name the export was asked with. */
export const RtstreamExportQuery = Schema.Struct({
  name: Schema.optionalKey(NonEmpty),
})
export type RtstreamExportQuery = typeof RtstreamExportQuery.Type

/**
 * An exported rtstream: its channel's raw asset (`m-…` for a display or camera, `a-…` for audio;
 * the rtstream's `exported_asset_id`). `stream_url` is the asset's file (MP4 or M4A, byte ranges).
 */
export const RtstreamExportView = Schema.Struct({
  video_id: AssetId,
  rtstream_id: RtstreamId,
  session_id: SessionId,
  name: Schema.String,
  /** Seconds. */
  duration: Schema.Finite,
  stream_url: Schema.String,
  player_url: Schema.String,
  download_url: Schema.String,
})
export type RtstreamExportView = typeof RtstreamExportView.Type

/**
 * The answer while a result is being made, as VideoDB's API gives it: VideoDB's SDK GETs
 * `output_url` every 5 s until the answer is no longer `processing`.
 */
export const Processing = Schema.Struct({
  success: Schema.Literal(true),
  status: Schema.Literal("processing"),
  data: Schema.Struct({ output_url: Schema.String }),
})
export type Processing = typeof Processing.Type
