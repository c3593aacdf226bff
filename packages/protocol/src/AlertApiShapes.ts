/**
 * Events and alerts (VideoDB's `conn.createEvent`, `listEvents`, and an index's `createAlert`,
 * `listAlerts`, `enableAlert`, `disableAlert`): an event is an account's prompt and label; an alert
 * watches one index's results for it, and fires to a WebSocket and a signed webhook.
 */
import { Schema } from "effect"
import { AlertId, DetectionEventId, RtstreamId, SceneIndexId } from "./Ids.js"
import { MAX_PROMPT_LENGTH } from "./SceneIndexApiShapes.js"

/** `POST /rtstream/event`; `GET` lists the account's events. */
export const DETECTION_EVENTS_ROUTE = "/rtstream/event"
/** `POST`: an alert on the index; `GET`: its alerts. */
export const ALERTS_ROUTE = "/rtstream/:rtstream_id/index/:index_id/alert"
/** `PATCH {action: "enable" | "disable"}`. */
export const ALERT_STATUS_ROUTE = "/rtstream/:rtstream_id/index/:index_id/alert/:alert_id/status"

const NonEmpty = (max: number) =>
  Schema.String.check(
    Schema.isMaxLength(max),
    Schema.makeFilter((text: string) => text.trim().length > 0 || "expected a non-empty text"),
  )

export const DetectionEventRequest = Schema.Struct({
  event_prompt: NonEmpty(MAX_PROMPT_LENGTH),
  label: NonEmpty(256),
})
export type DetectionEventRequest = typeof DetectionEventRequest.Type

export const DetectionEventView = Schema.Struct({
  event_id: DetectionEventId,
  event_prompt: Schema.String,
  label: Schema.String,
  created_at: Schema.String,
})
export type DetectionEventView = typeof DetectionEventView.Type

export const DetectionEventList = Schema.Struct({ events: Schema.Array(DetectionEventView) })
export type DetectionEventList = typeof DetectionEventList.Type

export const AlertRequest = Schema.Struct({
  event_id: DetectionEventId,
  callback_url: Schema.optionalKey(Schema.NullOr(Schema.String.check(Schema.isMaxLength(2048)))),
  ws_connection_id: Schema.optionalKey(
    Schema.NullOr(Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(128))),
  ),
})
export type AlertRequest = typeof AlertRequest.Type

export const AlertView = Schema.Struct({
  alert_id: AlertId,
  rtstream_id: RtstreamId,
  index_id: SceneIndexId,
  event_id: DetectionEventId,
  label: Schema.String,
  callback_url: Schema.NullOr(Schema.String),
  ws_connection_id: Schema.NullOr(Schema.String),
  status: Schema.Literals(["enabled", "disabled"]),
})
export type AlertView = typeof AlertView.Type

export const AlertList = Schema.Struct({ alerts: Schema.Array(AlertView) })
export type AlertList = typeof AlertList.Type

export const AlertStatusRequest = Schema.Struct({ action: Schema.Literals(["enable", "disable"]) })
export type AlertStatusRequest = typeof AlertStatusRequest.Type
