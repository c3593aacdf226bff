/**
 * Error codes: stable strings a client can branch on, each with the HTTP status it maps to.
 * A rejected command or a refused request always names one of these and, where one is at fault,
 * the field.
 */
import { Schema } from "effect"
import { SessionStatus } from "./SessionStatus.js"

const codes = {
  // 400: the request itself is wrong
  invalid_request: 400,
  invalid_json: 400,
  missing_field: 400,
  invalid_field: 400,
  no_channels: 400,
  duplicate_channel_id: 400,
  multiple_primary_channels: 400,
  primary_channel_not_found: 400,
  primary_channel_not_video: 400,
  channel_type_mismatch: 400,
  invalid_callback_url: 400,
  channel_not_found: 400,
  checksum_mismatch: 400,
  unknown_engine: 400,
  unknown_model: 400,
  rtstream_not_audio: 400,
  rtstream_not_video: 400,
  invalid_time_range: 400,
  time_range_not_recorded: 400,
  source_unavailable: 400,
  // 401 / 402 / 403: who is asking
  unauthorized: 401,
  token_expired: 401,
  quota_exceeded: 402,
  forbidden: 403,
  forbidden_field: 403,
  // 404
  not_found: 404,
  session_not_found: 404,
  collection_not_found: 404,
  rtstream_not_found: 404,
  token_not_found: 404,
  index_not_found: 404,
  event_not_found: 404,
  alert_not_found: 404,
  /** WHIP: a method the resource does not take (trickle ICE `PATCH`). */
  method_not_allowed: 405,
  /** A pushed source offers no codec the recording can carry (WHIP: no H.264/VP8 video or Opus audio). */
  unsupported_codec: 406,
  // 409: the session's state does not allow it
  invalid_transition: 409,
  session_ended: 409,
  session_already_exists: 409,
  no_stored_channel: 409,
  export_channel_not_found: 409,
  export_channel_not_stored: 409,
  no_media: 409,
  no_transcript: 409,
  segment_conflict: 409,
  /** A segment whose media starts at or after an automatic stop (the late-media window takes only earlier ones). */
  recorded_after_stop: 409,
  /** A pushed session already has its publisher (one at a time, on any gateway). */
  publisher_active: 409,
  // 413 / 422 / 429
  payload_too_large: 413,
  unsupported_media_type: 415,
  unsupported_media: 422,
  rate_limited: 429,
  // 5xx: ours, never a client's mistake
  concurrency_conflict: 503,
  unavailable: 503,
  engine_unavailable: 503,
  internal_error: 500,
} as const satisfies Record<string, number>

/** Every error code. */
export const ErrorCode = Schema.Literals(Object.keys(codes) as Array<keyof typeof codes>)
export type ErrorCode = keyof typeof codes

/** The HTTP status an error code is answered with. */
export const httpStatusOf = (code: ErrorCode): number => codes[code]

/**
 * A command the session refused, or a request that could not be decoded. Carries what a client
 * needs: the code, a readable message, the field at fault and, for 409s, the current status.
 */
export class CaptureError extends Schema.TaggedError<CaptureError>()("CaptureError", {
  error_code: ErrorCode,
  message: Schema.String,
  field: Schema.optionalKey(Schema.String),
  current_status: Schema.optionalKey(SessionStatus),
}) {}

/** Shorthand constructor. */
export const captureError = (
  error_code: ErrorCode,
  message: string,
  extra: { readonly field?: string; readonly current_status?: SessionStatus } = {},
): CaptureError => new CaptureError({ error_code, message, ...extra })
