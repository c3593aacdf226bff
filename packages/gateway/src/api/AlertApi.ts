/**
 * Events and alerts, as VideoDB's SDK calls them: `POST /rtstream/event` (`createEvent`), `GET
 * /rtstream/event` (`listEvents`), and on an index `POST|GET /rtstream/{id}/index/{idx}/alert`
 * (`createAlert`, `listAlerts`) and `PATCH …/alert/{aid}/status` (`enableAlert`, `disableAlert`).
 */
import {
  ALERT_STATUS_ROUTE,
  ALERTS_ROUTE,
  AlertId,
  AlertList,
  AlertRequest,
  AlertStatusRequest,
  AlertView,
  DETECTION_EVENTS_ROUTE,
  DetectionEventList,
  DetectionEventRequest,
  DetectionEventView,
  RtstreamId,
  SceneIndexId,
  Success,
} from "@capture/protocol"
import { HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import { CommonFailures } from "./Failures.js"

const IndexParams = { rtstream_id: RtstreamId, index_id: SceneIndexId }

export class AlertGroup extends HttpApiGroup.make("alerts")
  .add(
    HttpApiEndpoint.post("createEvent", DETECTION_EVENTS_ROUTE, {
      payload: DetectionEventRequest,
      success: Success(DetectionEventView),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.get("listEvents", DETECTION_EVENTS_ROUTE, {
      success: Success(DetectionEventList),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.post("createAlert", ALERTS_ROUTE, {
      params: IndexParams,
      payload: AlertRequest,
      success: Success(AlertView),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.get("listAlerts", ALERTS_ROUTE, {
      params: IndexParams,
      success: Success(AlertList),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.patch("setAlertStatus", ALERT_STATUS_ROUTE, {
      params: { ...IndexParams, alert_id: AlertId },
      payload: AlertStatusRequest,
      success: Success(AlertView),
      error: CommonFailures,
    }),
  ) {}
