/**
 * Server → client WebSocket messages. The first message names the connection (`{connection_id}`);
 * after that every message has a `channel`: `capture_session` for lifecycle events, an AI channel
 * (`transcript`, `visual_index`, `scene_index`, `audio_index`, `alert`) or `error`.
 * Delivery is best-effort; webhooks are the durable path.
 */
import { Schema } from "effect"
import { type CaptureError, ErrorCode } from "./ErrorCode.js"
import { RtstreamId, SceneIndexId } from "./Ids.js"
import { lifecycleUnion } from "./LifecycleEvent.js"

/** The socket's first message: the id to pass as `ws_connection_id`. */
export const ConnectionMessage = Schema.Struct({
  connection_id: Schema.String.check(Schema.isMinLength(1)),
})
export type ConnectionMessage = typeof ConnectionMessage.Type

/** A lifecycle event on the `capture_session` channel. */
export const CaptureSessionMessage = lifecycleUnion({ channel: Schema.Literal("capture_session") }, {})
export type CaptureSessionMessage = typeof CaptureSessionMessage.Type

/** Milliseconds since the Unix epoch. */
export const EpochMillis = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
export type EpochMillis = typeof EpochMillis.Type

const aiMessage = <const C extends string, const F extends Schema.Struct.Fields>(channel: C, data: F) =>
  Schema.Struct({
    channel: Schema.Literal(channel),
    rtstream_id: RtstreamId,
    rtstream_name: Schema.String,
    data: Schema.Struct({ ...data, start: EpochMillis, end: EpochMillis }),
  })

/** Speech-to-text; interim results have `is_final: false`. */
export const TranscriptMessage = aiMessage("transcript", { text: Schema.String, is_final: Schema.Boolean })
export type TranscriptMessage = typeof TranscriptMessage.Type

const indexMessage = <const C extends string>(channel: C) =>
  Schema.Struct({
    ...aiMessage(channel, { text: Schema.String }).fields,
    /** The index that produced it (so the SDK's `stream({id})` can match it). */
    index_id: SceneIndexId,
  })

/** A description of what a display shows. */
export const VisualIndexMessage = indexMessage("visual_index")
export type VisualIndexMessage = typeof VisualIndexMessage.Type

/** A scene description (the name VideoDB's newer docs use for visual indexing). */
export const SceneIndexMessage = indexMessage("scene_index")
export type SceneIndexMessage = typeof SceneIndexMessage.Type

/** A semantic summary of audio. */
export const AudioIndexMessage = indexMessage("audio_index")
export type AudioIndexMessage = typeof AudioIndexMessage.Type

/** An alert fired on an index's result. */
export const AlertMessage = Schema.Struct({
  ...aiMessage("alert", {
    label: Schema.String,
    triggered: Schema.Boolean,
    confidence: Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 })),
    alert_id: Schema.String,
    event_id: Schema.String,
    /** The result that fired it, and why. */
    text: Schema.String,
    explanation: Schema.String,
  }).fields,
  index_id: SceneIndexId,
})
export type AlertMessage = typeof AlertMessage.Type

/**
 * Something went wrong for this connection (e.g. a refused subscription), or for an rtstream's AI
 * work (an engine down past its retries): then `rtstream_id` and `rtstream_name` name it.
 */
export const ErrorMessage = Schema.Struct({
  channel: Schema.Literal("error"),
  error_code: ErrorCode,
  message: Schema.String,
  rtstream_id: Schema.optionalKey(RtstreamId),
  rtstream_name: Schema.optionalKey(Schema.String),
})
export type ErrorMessage = typeof ErrorMessage.Type

/** The `error` message reporting `error`. */
export const errorMessageOf = (error: CaptureError): ErrorMessage => ({
  channel: "error",
  error_code: error.error_code,
  message: error.message,
})

/** The AI channels. */
export const AiChannel = Schema.Literals([
  "transcript",
  "visual_index",
  "scene_index",
  "audio_index",
  "alert",
])
export type AiChannel = typeof AiChannel.Type

/** Every message the server sends on a WebSocket. */
export const WebSocketMessage = Schema.Union([
  ConnectionMessage,
  ...CaptureSessionMessage.members,
  TranscriptMessage,
  VisualIndexMessage,
  SceneIndexMessage,
  AudioIndexMessage,
  AlertMessage,
  ErrorMessage,
])
export type WebSocketMessage = typeof WebSocketMessage.Type
