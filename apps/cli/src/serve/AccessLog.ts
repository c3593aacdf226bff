/**
 * One log line per HTTP request answered: method, path (never the query string, which may carry a
 * token or a signature), status, duration and a request id (the client's `x-request-id` when it
 * is a plain token, else a new one), plus the session a path names and the account the request
 * acted for (noted by the gateway once the credential checked out). Health probes and scrapes
 * that pass are left out: an orchestrator asks every few seconds. Each request is also counted
 * for /metrics.
 */
import { randomBytes } from "node:crypto"
import { CurrentRequestNotes, type RequestNotes } from "@capture/gateway"
import { Effect } from "effect"
import { HttpServerError, HttpServerRequest, type HttpServerResponse } from "effect/http"
import { log } from "../Log.js"
import { recordHttpRequest } from "./Metrics.js"

const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/
const PROBES = new Set(["/healthz", "/readyz", "/metrics"])

/** The request id a line carries: the client's, if it is a plain token, else a new one. */
export const requestIdOf = (header: string | undefined): string =>
  header !== undefined && CLIENT_REQUEST_ID.test(header)
    ? header
    : `req-${randomBytes(9).toString("base64url")}`

/** The server-wide middleware writing the line once the response is known. */
export const accessLog = <E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest>,
): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest> =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const started = performance.now()
    const notes: RequestNotes = { account_id: undefined }
    const exit = yield* Effect.exit(Effect.provideService(app, CurrentRequestNotes, notes))
    const status = HttpServerError.exitResponse(exit).status
    const path = request.url.split(/[?#]/, 1)[0] ?? "/"
    const seconds = (performance.now() - started) / 1000
    recordHttpRequest(
      request.method,
      path,
      status,
      seconds,
      Number(request.headers["content-length"] ?? 0) || 0,
    )
    if (!(PROBES.has(path) && status < 400)) {
      log(`${request.method} ${path} ${status}`, {
        level: status >= 500 ? "error" : "info",
        request_id: requestIdOf(request.headers["x-request-id"]),
        http_method: request.method,
        http_path: path,
        http_status: status,
        duration_ms: Math.round(seconds * 10_000) / 10,
        ...(notes.account_id === undefined ? {} : { account_id: notes.account_id }),
      })
    }
    return yield* exit
  })
