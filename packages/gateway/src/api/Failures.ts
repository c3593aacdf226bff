/**
 * The failure envelope as HttpApi error schemas, one class per HTTP status, so the OpenAPI
 * document lists each endpoint's failures and every refusal answers the protocol's `Failure`
 * (`{success: false, message, error_code, field?, current_status?}`) with its code's status.
 */
import { type CaptureError, Failure as FailureEnvelope, failureOf, httpStatusOf } from "@capture/protocol"
import { Schema } from "effect"

const fields = FailureEnvelope.fields

export class BadRequest extends Schema.Error<BadRequest>("capture/BadRequest")(fields, {
  httpApiStatus: 400,
  description: "The request is malformed: `field` names the part at fault.",
}) {}
export class Unauthorized extends Schema.Error<Unauthorized>("capture/Unauthorized")(fields, {
  httpApiStatus: 401,
  description: "Missing, unknown, revoked or expired `x-access-token`.",
}) {}
export class QuotaExceeded extends Schema.Error<QuotaExceeded>("capture/QuotaExceeded")(fields, {
  httpApiStatus: 402,
  description: "The session or the account has stored as much media as it may.",
}) {}
export class Forbidden extends Schema.Error<Forbidden>("capture/Forbidden")(fields, {
  httpApiStatus: 403,
  description:
    "The credential may not do this: a client token outside its scope (`forbidden`), or setting a field only an API key may set (`forbidden_field`).",
}) {}
export class NotFound extends Schema.Error<NotFound>("capture/NotFound")(fields, {
  httpApiStatus: 404,
  description: "No such session, collection or video in this account.",
}) {}
export class Conflict extends Schema.Error<Conflict>("capture/Conflict")(fields, {
  httpApiStatus: 409,
  description: "The session's status does not allow this; `current_status` says which it is.",
}) {}
export class PayloadTooLarge extends Schema.Error<PayloadTooLarge>("capture/PayloadTooLarge")(fields, {
  httpApiStatus: 413,
  description: "The body is larger than the server accepts.",
}) {}
export class UnsupportedMediaType extends Schema.Error<UnsupportedMediaType>("capture/UnsupportedMediaType")(
  fields,
  { httpApiStatus: 415, description: "The body's content type is not one this endpoint reads." },
) {}
export class Unprocessable extends Schema.Error<Unprocessable>("capture/Unprocessable")(fields, {
  httpApiStatus: 422,
  description: "The body is well-formed but its content is refused (e.g. not media).",
}) {}
export class TooManyRequests extends Schema.Error<TooManyRequests>("capture/TooManyRequests")(fields, {
  httpApiStatus: 429,
  description: "Slow down.",
}) {}
export class Unavailable extends Schema.Error<Unavailable>("capture/Unavailable")(fields, {
  httpApiStatus: 503,
  description: "The server cannot reach its storage right now; retry with the same request.",
}) {}
export class InternalError extends Schema.Error<InternalError>("capture/InternalError")(fields, {
  httpApiStatus: 500,
  description: "A bug on our side.",
}) {}

/** The failure every endpoint may answer. */
export const CommonFailures = [
  BadRequest,
  Unauthorized,
  Forbidden,
  NotFound,
  Unavailable,
  InternalError,
] as const

export type Failure =
  | BadRequest
  | Unauthorized
  | QuotaExceeded
  | Forbidden
  | NotFound
  | Conflict
  | PayloadTooLarge
  | UnsupportedMediaType
  | Unprocessable
  | TooManyRequests
  | Unavailable
  | InternalError

/** The failure class answering `error` with its code's status. */
export const toFailure = (error: CaptureError): Failure => {
  const body = failureOf(error)
  switch (httpStatusOf(error.error_code)) {
    case 400:
      return new BadRequest(body)
    case 401:
      return new Unauthorized(body)
    case 402:
      return new QuotaExceeded(body)
    case 403:
      return new Forbidden(body)
    case 404:
      return new NotFound(body)
    case 409:
      return new Conflict(body)
    case 413:
      return new PayloadTooLarge(body)
    case 415:
      return new UnsupportedMediaType(body)
    case 422:
      return new Unprocessable(body)
    case 429:
      return new TooManyRequests(body)
    case 503:
      return new Unavailable(body)
    default:
      return new InternalError(body)
  }
}
