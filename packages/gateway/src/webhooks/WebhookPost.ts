/**
 * One webhook POST: the callback URL checked again against the policy (DNS may have changed since
 * the session named it), the version-2 envelope signed the Standard Webhooks way with every active
 * secret, sent to the address that was checked, and the answer classified as an attempt's outcome.
 */
import http from "node:http"
import https from "node:https"
import type { LookupFunction } from "node:net"
import {
  type LifecycleEvent,
  signWebhook,
  toWebhookEnvelope,
  WEBHOOK_ID_HEADER,
  WEBHOOK_SIGNATURE_HEADER,
  WEBHOOK_TIMESTAMP_HEADER,
  type WebhookAttempt,
  type WebhookSecret,
} from "@capture/protocol"
import { Result } from "effect"
import {
  type CallbackUrlPolicy,
  type CheckedCallbackUrl,
  type ResolvedAddress,
  resolveCallbackUrl,
} from "./CallbackUrlPolicy.js"

/** A delivery attempt's result, before it is numbered and timed. */
export type AttemptOutcome = Pick<WebhookAttempt, "status_code" | "latency_ms" | "error">

/** How a POST is made. */
export interface WebhookPostOptions {
  /** Which callback URLs may be called. */
  readonly policy: CallbackUrlPolicy
  /** The account's active signing secrets; asked only once the URL passed the policy. */
  readonly secrets: () => Promise<ReadonlyArray<WebhookSecret>>
  /** How long the POST may take, connect to response headers. */
  readonly timeoutMs: number
  /** Aborts the POST (the process is stopping): the outcome's error is then `aborted`. */
  readonly signal: AbortSignal
  /** The W3C trace context sent along (tracing on), so the receiver may continue the trace. */
  readonly traceparent?: string
}

const USER_AGENT = "Capture-Webhooks/2"

/**
 * POSTs `lifecycle` to `url`, signed. A refused URL, a missing secret, a non-2xx answer (redirects
 * are not followed), a timeout or a connection error is a failed outcome, not a rejection; only a
 * failure to read the secrets rejects.
 */
export const postWebhook = (
  lifecycle: LifecycleEvent,
  url: string,
  options: WebhookPostOptions,
): Promise<AttemptOutcome> =>
  postSignedJson(lifecycle.id, JSON.stringify(toWebhookEnvelope(lifecycle)), url, options)

/**
 * POSTs `body` to `url` with `webhook-id: id`, signed with every active secret, the URL checked
 * against the policy first: what lifecycle webhooks and alerts share. Never rejects but for the
 * secrets.
 */
export const postSignedJson = async (
  id: string,
  body: string,
  url: string,
  options: WebhookPostOptions,
): Promise<AttemptOutcome> => {
  const checked = await resolveCallbackUrl(url, options.policy)
  if (Result.isFailure(checked)) return { status_code: null, latency_ms: 0, error: checked.failure.reason }
  const secrets = await options.secrets()
  if (secrets.length === 0) return { status_code: null, latency_ms: 0, error: "no_signing_secret" }
  const timestamp = Math.floor(Date.now() / 1000)
  const headers = {
    [WEBHOOK_ID_HEADER]: id,
    [WEBHOOK_TIMESTAMP_HEADER]: String(timestamp),
    [WEBHOOK_SIGNATURE_HEADER]: secrets.map((secret) => signWebhook(secret, id, timestamp, body)).join(" "),
    ...(options.traceparent === undefined ? {} : { traceparent: options.traceparent }),
  }
  return send(checked.success, body, headers, options.timeoutMs, options.signal)
}

/** Connects to the address the policy checked instead of resolving the host again. */
const pinnedLookup =
  (target: ResolvedAddress): LookupFunction =>
  (_hostname, options, callback) => {
    if (options.all === true) callback(null, [{ address: target.address, family: target.family }])
    else callback(null, target.address, target.family)
  }

/** One POST; never rejects. */
const send = (
  target: CheckedCallbackUrl,
  body: string,
  headers: Record<string, string>,
  timeoutMs: number,
  stop: AbortSignal,
): Promise<AttemptOutcome> =>
  new Promise((resolve) => {
    const started = performance.now()
    const done = (status_code: number | null, error: string | null) =>
      resolve({ status_code, latency_ms: Math.round(performance.now() - started), error })
    const address = target.addresses[0]
    if (address === undefined) return done(null, "unresolvable")
    const timeout = AbortSignal.timeout(timeoutMs)
    const signal = AbortSignal.any([timeout, stop])
    const client = target.url.protocol === "https:" ? https : http
    const request = client.request(
      target.url,
      {
        method: "POST",
        headers: {
          ...headers,
          "content-type": "application/json",
          "content-length": String(Buffer.byteLength(body)),
          "user-agent": USER_AGENT,
        },
        agent: false,
        lookup: pinnedLookup(address),
        signal,
      },
      (response) => {
        // The body is not read; the timeout signal still ends a response that never finishes.
        response.on("error", () => {})
        response.resume()
        const code = response.statusCode ?? 0
        done(code, code >= 200 && code < 300 ? null : "unexpected_status")
      },
    )
    request.on("error", (error: NodeJS.ErrnoException) => {
      if (stop.aborted) done(null, "aborted")
      else if (timeout.aborted) done(null, "timeout")
      else done(null, `connection_error: ${error.code ?? error.message}`)
    })
    request.end(body)
  })
