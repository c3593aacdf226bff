/**
 * The WHIP endpoint of a `source: "whip"` session (RFC 9725): `POST /whip/{session_id}` with an
 * SDP offer (`application/sdp`) and `Authorization: Bearer <token>` (the token the start answered
 * with) is answered 201 with the SDP answer and `Location` of the publish's resource;
 * `DELETE` on that resource ends the publish (as a publisher leaving: the grace period, then the
 * stop); `PATCH` (trickle ICE) is 405, every candidate being in the answer; `OPTIONS` answers
 * CORS preflights, so a page on another origin publishes. Refusals are JSON with an `error_code`:
 * 401 a missing or wrong token, 403 another session's token, 409 a session that no longer records
 * or a second publisher, 406 codecs the recording cannot carry, 415 a body that is not SDP.
 */
import { type CaptureError, captureError, failureOf, httpStatusOf, type WhipIngress } from "@capture/protocol"
import { Effect } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import type { GatewayServicesShape, WhipEndpoint } from "../GatewayContext.js"

/** The path publishers POST their offer to. */
export const whipPath = (sessionId: string): string => `/whip/${sessionId}`

/** The `whip_url` and `whip_bearer_token` a `source: "whip"` start answers with. */
export const whipAnswer = (publicUrl: string, whip: WhipEndpoint, sessionId: string): WhipIngress => ({
  whip_url: `${publicUrl}${whipPath(sessionId)}`,
  whip_bearer_token: whip.keys.keyFor(sessionId),
})

const CORS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "POST, DELETE, PATCH, OPTIONS",
  "access-control-allow-headers": "authorization, content-type, if-match",
  "access-control-expose-headers": "location, etag, link, accept-post",
  "access-control-max-age": "600",
}

const refused = (error: CaptureError, headers: Record<string, string> = {}) =>
  HttpServerResponse.jsonUnsafe(failureOf(error), {
    status: httpStatusOf(error.error_code),
    headers: { ...CORS, ...headers },
  })

/** Why the request's bearer token does not open `sessionId`, if it does not. */
const tokenRefusal = (
  whip: WhipEndpoint,
  sessionId: string,
  authorization: string | undefined,
): CaptureError | undefined => {
  const token = /^Bearer\s+(\S+)$/i.exec(authorization ?? "")?.[1]
  if (token === undefined) {
    return captureError("unauthorized", "send the session's WHIP token: Authorization: Bearer <token>", {
      field: "authorization",
    })
  }
  const opens = whip.keys.sessionOf(token)
  if (opens === undefined) {
    return captureError("unauthorized", "this bearer token was not issued here", { field: "authorization" })
  }
  return opens === sessionId
    ? undefined
    : captureError("forbidden", `this bearer token is another session's, not ${sessionId}'s`, {
        field: "authorization",
      })
}

const UNAUTHORIZED_HEADERS = { "www-authenticate": 'Bearer realm="whip"' }

const notServed = captureError(
  "not_found",
  "this server takes no WHIP publishes (CAPTURE_WHIP_ICE_ADDRESSES)",
)

export const whipRoutes = (services: GatewayServicesShape) => {
  const publish = Effect.gen(function* () {
    const whip = services.whip
    if (whip === undefined) return refused(notServed)
    const request = yield* HttpServerRequest.HttpServerRequest
    const sessionId = (yield* HttpRouter.params).session_id ?? ""
    const denied = tokenRefusal(whip, sessionId, request.headers.authorization)
    if (denied !== undefined) {
      return refused(denied, denied.error_code === "unauthorized" ? UNAUTHORIZED_HEADERS : {})
    }
    const contentType = (request.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase()
    if (contentType !== "application/sdp") {
      return refused(
        captureError("unsupported_media_type", "send the SDP offer as application/sdp", {
          field: "content-type",
        }),
      )
    }
    const offer = yield* request.text
    const answered = yield* Effect.promise(() =>
      whip.ingest.answer(sessionId, offer, (end) => whip.admit(sessionId, end)),
    )
    if ("refused" in answered) {
      whip.log(`whip publish to session ${sessionId} refused: ${answered.refused.message}`)
      return refused(answered.refused)
    }
    return HttpServerResponse.text(answered.answer, {
      status: 201,
      contentType: "application/sdp",
      headers: {
        ...CORS,
        location: `${services.config.publicUrl}${whipPath(sessionId)}/${answered.resourceId}`,
      },
    })
  })

  const deleteResource = Effect.gen(function* () {
    const whip = services.whip
    if (whip === undefined) return refused(notServed)
    const request = yield* HttpServerRequest.HttpServerRequest
    const params = yield* HttpRouter.params
    const sessionId = params.session_id ?? ""
    const resourceId = params.resource_id ?? ""
    const denied = tokenRefusal(whip, sessionId, request.headers.authorization)
    if (denied !== undefined) {
      return refused(denied, denied.error_code === "unauthorized" ? UNAUTHORIZED_HEADERS : {})
    }
    // The resource lives on the gateway that answered its offer (its ICE addresses are that gateway's).
    if (!whip.ingest.has(sessionId, resourceId)) {
      return refused(captureError("not_found", `no publish ${resourceId} of session ${sessionId} here`))
    }
    whip.ingest.end(resourceId)
    return HttpServerResponse.empty({ status: 200, headers: CORS })
  })

  const preflight = (allow: string) =>
    Effect.succeed(
      HttpServerResponse.empty({
        status: 204,
        headers: { ...CORS, allow, ...(allow.includes("POST") ? { "accept-post": "application/sdp" } : {}) },
      }),
    )

  const noTrickle = Effect.succeed(
    refused(
      captureError("method_not_allowed", "trickle ICE is not taken: every candidate is in the SDP answer"),
      { allow: "DELETE, OPTIONS" },
    ),
  )

  return HttpRouter.addAll([
    HttpRouter.route("POST", "/whip/:session_id", publish),
    HttpRouter.route("OPTIONS", "/whip/:session_id", preflight("POST, OPTIONS")),
    HttpRouter.route("DELETE", "/whip/:session_id/:resource_id", deleteResource),
    HttpRouter.route("PATCH", "/whip/:session_id/:resource_id", noTrickle),
    HttpRouter.route("OPTIONS", "/whip/:session_id/:resource_id", preflight("DELETE, OPTIONS")),
  ])
}
