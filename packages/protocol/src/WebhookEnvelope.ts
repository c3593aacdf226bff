/**
 * Webhooks: the version-2 envelope a session's `callback_url` receives, and Standard Webhooks
 * signing (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`).
 * Delivery is at-least-once, so every envelope carries the stable event id as `id`.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto"
import { Schema } from "effect"
import { EventId } from "./Ids.js"
import { IsoTimestamp, type LifecycleEvent, lifecycleUnion } from "./LifecycleEvent.js"

/** The envelope version written by this code. */
export const WEBHOOK_VERSION = "2"

/** A webhook body: a lifecycle event with `version: "2"`. */
export const WebhookEnvelope = lifecycleUnion(
  { version: Schema.Literal(WEBHOOK_VERSION), id: EventId },
  { end_user_id: Schema.String, timestamp: IsoTimestamp },
)
export type WebhookEnvelope = typeof WebhookEnvelope.Type

/** The webhook body announcing `event`. */
export const toWebhookEnvelope = (event: LifecycleEvent): WebhookEnvelope => ({
  version: WEBHOOK_VERSION,
  ...event,
})

/** Header carrying the event id; receivers deduplicate by it. */
export const WEBHOOK_ID_HEADER = "webhook-id"
/** Header carrying the signing time in Unix seconds. */
export const WEBHOOK_TIMESTAMP_HEADER = "webhook-timestamp"
/** Header carrying space-separated `v1,<base64>` signatures. */
export const WEBHOOK_SIGNATURE_HEADER = "webhook-signature"

/** A Standard Webhooks signing secret: `whsec_` then base64 key bytes. */
export const WebhookSecret = Schema.TemplateLiteral(["whsec_", Schema.String])
export type WebhookSecret = typeof WebhookSecret.Type

/** A fresh signing secret with a 32-byte key. */
export const newWebhookSecret = (): WebhookSecret => `whsec_${randomBytes(32).toString("base64")}`

const SECRET_PREFIX = "whsec_"

const keyOf = (secret: string): Buffer =>
  Buffer.from(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret, "base64")

/** `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed by the secret's decoded base64 part. */
export const signWebhook = (
  secret: WebhookSecret,
  id: string,
  timestampSeconds: number,
  body: string,
): string =>
  `v1,${createHmac("sha256", keyOf(secret)).update(`${id}.${timestampSeconds}.${body}`).digest("base64")}`

/** The three headers to send with `body`. */
export const webhookHeaders = (
  secret: WebhookSecret,
  id: string,
  timestampSeconds: number,
  body: string,
): Record<string, string> => ({
  [WEBHOOK_ID_HEADER]: id,
  [WEBHOOK_TIMESTAMP_HEADER]: String(timestampSeconds),
  [WEBHOOK_SIGNATURE_HEADER]: signWebhook(secret, id, timestampSeconds, body),
})

/** Replay window of the Standard Webhooks spec: a signature older or newer than this is refused. */
export const WEBHOOK_TOLERANCE_SECONDS = 5 * 60

/**
 * Whether `signatureHeader` holds a valid `v1` signature of `body` for `id` and `timestamp`, and
 * the timestamp is within `toleranceSeconds` of `nowSeconds`.
 */
export const verifyWebhook = (
  secret: WebhookSecret,
  headers: { readonly id: string; readonly timestamp: string; readonly signature: string },
  body: string,
  options: { readonly nowSeconds?: number; readonly toleranceSeconds?: number } = {},
): boolean => {
  if (!/^\d{1,12}$/.test(headers.timestamp)) return false
  const timestamp = Number(headers.timestamp)
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000)
  if (Math.abs(now - timestamp) > (options.toleranceSeconds ?? WEBHOOK_TOLERANCE_SECONDS)) return false
  const expected = Buffer.from(signWebhook(secret, headers.id, timestamp, body))
  return headers.signature.split(" ").some((candidate) => {
    const given = Buffer.from(candidate)
    return given.length === expected.length && timingSafeEqual(given, expected)
  })
}
