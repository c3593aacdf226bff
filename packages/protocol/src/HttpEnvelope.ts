/**
 * HTTP response envelopes: every JSON response is `{success: true, data}` or
 * `{success: false, message, error_code, field?}`, with the status `httpStatusOf(error_code)`.
 */
import { Schema } from "effect"
import { type CaptureError, ErrorCode } from "./ErrorCode.js"
import { SessionStatus } from "./SessionStatus.js"

/** A successful response carrying `data`. */
export const Success = <S extends Schema.Top>(data: S) =>
  Schema.Struct({ success: Schema.Literal(true), data })
/** A successful response's body. */
export type Success<A> = { readonly success: true; readonly data: A }

/** A refused request: the code to branch on, a readable message, the field at fault. */
export const Failure = Schema.Struct({
  success: Schema.Literal(false),
  message: Schema.String,
  error_code: ErrorCode,
  field: Schema.optionalKey(Schema.String),
  /** For 409s: the session's status that refused the command. */
  current_status: Schema.optionalKey(SessionStatus),
})
export type Failure = typeof Failure.Type

/** Either envelope, as a client decodes a response. */
export const HttpResponse = <S extends Schema.Top>(data: S) => Schema.Union([Success(data), Failure])

/** The success body for `data`. */
export const successOf = <A>(data: A): Success<A> => ({ success: true, data })

/** The failure body for `error`; answer it with `httpStatusOf(error.error_code)`. */
export const failureOf = (error: CaptureError): Failure => ({
  success: false,
  message: error.message,
  error_code: error.error_code,
  ...(error.field === undefined ? {} : { field: error.field }),
  ...(error.current_status === undefined ? {} : { current_status: error.current_status }),
})
