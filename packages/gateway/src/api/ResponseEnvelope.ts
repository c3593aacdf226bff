/**
 * The last line of defence for the wire contract: every error response is the failure envelope.
 * Refusals that happen before an API handler runs (unknown path, unsupported content type, an
 * oversized body) come out of the HTTP layer as bare responses or defects; this global middleware
 * rewrites them. A defect that is not the client's doing is logged and answered 500.
 */
import { captureError, type ErrorCode, failureOf, httpStatusOf } from "@capture/protocol"
import { Cause, Effect } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"

const codeForStatus = (status: number): ErrorCode => {
  switch (status) {
    case 400:
      return "invalid_request"
    case 401:
      return "unauthorized"
    case 403:
      return "forbidden"
    case 404:
      return "not_found"
    case 413:
      return "payload_too_large"
    case 415:
      return "unsupported_media_type"
    case 429:
      return "rate_limited"
    case 503:
      return "unavailable"
    default:
      return status >= 500 ? "internal_error" : "invalid_request"
  }
}

const envelope = (code: ErrorCode, message: string, field?: string, status = httpStatusOf(code)) =>
  HttpServerResponse.jsonUnsafe(
    failureOf(captureError(code, message, field === undefined ? {} : { field })),
    {
      status,
    },
  )

const isBodyTooLarge = (defect: unknown): boolean => {
  for (let value = defect, depth = 0; typeof value === "object" && value !== null && depth < 4; depth++) {
    if ((value as { reason?: unknown }).reason === "BodyTooLarge") return true
    value = (value as { reason?: unknown; cause?: unknown }).reason ?? (value as { cause?: unknown }).cause
  }
  return false
}

const isJson = (response: HttpServerResponse.HttpServerResponse): boolean =>
  /json/.test(response.headers["content-type"] ?? "") ||
  (response.body._tag === "Uint8Array" && /json/.test(response.body.contentType))

/** Installs the envelope middleware on every route. */
export const responseEnvelope = (log: (message: string) => void) =>
  HttpRouter.middleware(
    (httpEffect) =>
      httpEffect.pipe(
        Effect.catchCause((cause) => {
          const defect = Cause.squash(cause)
          if (isBodyTooLarge(defect)) {
            return Effect.succeed(envelope("payload_too_large", "the body is too large", "body"))
          }
          const failure = defect as { _tag?: string; reason?: { _tag?: string } } | null
          if (failure?._tag === "RouteNotFound" || failure?.reason?._tag === "RouteNotFound")
            return Effect.succeed(envelope("not_found", "no such route"))
          if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause)
          log(`internal error: ${Cause.pretty(cause)}`)
          return Effect.succeed(envelope("internal_error", "internal error"))
        }),
        Effect.map((response) => {
          if (response.status < 400 || isJson(response)) return response
          const code = codeForStatus(response.status)
          return envelope(
            code,
            response.status === 415
              ? "unsupported content type: send application/json"
              : `request refused (${response.status})`,
            response.status === 415 ? "content-type" : undefined,
            response.status,
          )
        }),
      ),
    { global: true },
  )
