/**
 * The last line of defence for the wire contract: every error response is the failure envelope.
 * Refusals that happen before an API handler runs (unknown path, unsupported content type, an
 * oversized body) come out of the HTTP layer as bare responses or defects; this global middleware
 * rewrites them. A defect that is not the client's doing is logged and answered 500.
 *
 * A 5xx is never the client's doing, and its message may name internals (account ids, KV keys,
 * subjects): the client gets a stable message for its error code, the log gets the original.
 */
import { captureError, type ErrorCode, failureOf, httpStatusOf } from "@capture/protocol"
import { Cause, Effect } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"

const codeForStatus = (status: number): ErrorCode => {
  switch (status) {
    case 400:
      return "invalid_request"
    case 401:
      return "unauthorized"
    case 402:
      return "quota_exceeded"
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

/** What a client is told for a 5xx, by error code: nothing about what failed inside. */
const STABLE_MESSAGES: Partial<Record<ErrorCode, string>> = {
  unavailable: "the service cannot reach its storage right now; retry the request",
  concurrency_conflict: "the session changed concurrently; retry the request",
  internal_error: "internal error",
}

/** The code and message of a failure envelope, if `response` carries one. */
const failureIn = (
  response: HttpServerResponse.HttpServerResponse,
): { readonly code: ErrorCode; readonly message: string } | undefined => {
  if (response.body._tag !== "Uint8Array") return undefined
  try {
    const parsed = JSON.parse(new TextDecoder().decode(response.body.body)) as {
      error_code?: unknown
      message?: unknown
    }
    return typeof parsed.error_code === "string"
      ? { code: parsed.error_code as ErrorCode, message: String(parsed.message) }
      : undefined
  } catch {
    return undefined
  }
}

/**
 * A 5xx failure envelope with the stable message of its code; the original message is logged with
 * the request. Other 5xx bodies are ours to shape (say `/readyz`'s reason) and pass through.
 */
const withoutInternals = (response: HttpServerResponse.HttpServerResponse, log: (message: string) => void) =>
  Effect.gen(function* () {
    const failure = failureIn(response)
    if (failure === undefined) return response
    const request = yield* HttpServerRequest.HttpServerRequest
    const code = failure.code in STABLE_MESSAGES ? failure.code : codeForStatus(response.status)
    const stable = STABLE_MESSAGES[code] ?? "internal error"
    // A defect was logged with its cause already.
    if (failure.message !== stable) {
      log(`${request.method} ${request.url} → ${response.status}: ${failure.message}`)
    }
    return envelope(code, stable, undefined, response.status)
  })

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
          // The client went away or timed out mid-body: its doing, not a defect of ours.
          if (failure?.reason?._tag === "RequestParseError")
            return Effect.succeed(envelope("invalid_request", "the request body could not be read", "body"))
          if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause)
          log(`internal error: ${Cause.pretty(cause)}`)
          return Effect.succeed(envelope("internal_error", "internal error"))
        }),
        Effect.flatMap((response) =>
          response.status >= 500 ? withoutInternals(response, log) : Effect.succeed(response),
        ),
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
