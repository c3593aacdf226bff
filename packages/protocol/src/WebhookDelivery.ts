/**
 * Webhook deliveries as the API reports them: one record per lifecycle event sent to a session's
 * `callback_url`, and one per AI alert a result of the session fired to the alert's
 * `callback_url`, each with every attempt (time, HTTP status, latency, error) and, while the
 * delivery is still being retried, when the next attempt is due.
 */
import { Schema } from "effect"
import { AlertId, DetectionEventId, EventId, RtstreamId, SceneIndexId, SessionId } from "./Ids.js"
import { IsoTimestamp, LifecycleEventName } from "./LifecycleEvent.js"

/** `pending` while attempts remain, then `delivered` (a 2xx answer) or `failed` (schedule exhausted). */
export const WebhookDeliveryStatus = Schema.Literals(["pending", "delivered", "failed"])
export type WebhookDeliveryStatus = typeof WebhookDeliveryStatus.Type

/** One POST of a delivery. `status_code` is null when no answer came; `error` is null on success. */
export const WebhookAttempt = Schema.Struct({
  attempt: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
  at: IsoTimestamp,
  status_code: Schema.NullOr(Schema.Int),
  latency_ms: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)),
  error: Schema.NullOr(Schema.String),
})
export type WebhookAttempt = typeof WebhookAttempt.Type

/** The delivery of one lifecycle event (`event_id` is the webhook's `id`, stable across attempts). */
export const WebhookDelivery = Schema.Struct({
  event_id: EventId,
  session_id: SessionId,
  /** The session's event sequence: deliveries of a session go out in this order. */
  sequence: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
  event: LifecycleEventName,
  url: Schema.String,
  status: WebhookDeliveryStatus,
  attempts: Schema.Array(WebhookAttempt),
  /** When the next attempt is due; null once delivered or failed. */
  next_attempt_at: Schema.NullOr(IsoTimestamp),
})
export type WebhookDelivery = typeof WebhookDelivery.Type

/**
 * The delivery of one fired alert: an index result (`scene` of `index_id`) of one of the session's
 * rtstreams matched the alert's event. `<alert_id>.<scene>` is the webhook's id, stable across attempts.
 */
export const AlertDelivery = Schema.Struct({
  alert_id: AlertId,
  /** The detection event the alert watches for (`aev-…`). */
  event_id: DetectionEventId,
  session_id: SessionId,
  rtstream_id: RtstreamId,
  index_id: SceneIndexId,
  scene: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  url: Schema.String,
  status: WebhookDeliveryStatus,
  attempts: Schema.Array(WebhookAttempt),
  /** When the next attempt is due; null once delivered or failed. */
  next_attempt_at: Schema.NullOr(IsoTimestamp),
})
export type AlertDelivery = typeof AlertDelivery.Type

/**
 * An alert delivery as stored before its records named their session (key `<alert_id>.<scene>`,
 * until 7749f0a): read after an upgrade, completed from the alert it belongs to.
 */
export const LegacyAlertDelivery = Schema.Struct({
  alert_id: AlertId,
  scene: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  url: Schema.String,
  status: WebhookDeliveryStatus,
  attempts: Schema.Array(WebhookAttempt),
  next_attempt_at: Schema.NullOr(IsoTimestamp),
})
export type LegacyAlertDelivery = typeof LegacyAlertDelivery.Type

/**
 * `GET /capture/session/{session_id}/webhooks`: a session's lifecycle deliveries in event order,
 * and its alert deliveries by rtstream, index and scene.
 */
export const WebhookDeliveryList = Schema.Struct({
  deliveries: Schema.Array(WebhookDelivery),
  alert_deliveries: Schema.Array(AlertDelivery),
})
export type WebhookDeliveryList = typeof WebhookDeliveryList.Type
