/**
 * Alerts on an rtstream's indexes: attached (`AlertCreated`, with the event's label and prompt
 * copied in), enabled and disabled (`AlertChanged`), stored on the rtstream's subject like its
 * indexes. Every result an index stores is evaluated against its enabled alerts before it is
 * stored, and the alerts it fires travel in the result (`SceneIndexed.alerts`): one stored fact, so
 * an alert fires once per result whatever is redelivered.
 */

import type { SpanParent } from "@capture/jetstream"
import {
  type AlertId,
  type AlertView,
  type CaptureError,
  captureError,
  type DetectionEventView,
  type FiredAlert,
  makeIdBody,
  newAlertId,
  type RtstreamId,
} from "@capture/protocol"
import { Result } from "effect"
import { findIndex, storeDecision } from "../SceneIndexes.js"
import type { AiStore } from "../store/AiStore.js"
import type { AlertState, RtstreamAi } from "../store/RtstreamAi.js"
import type { TranscriptionTarget } from "../Transcription.js"
import { matchEvent } from "./AlertMatcher.js"

const indexNotFound = (indexId: string): CaptureError =>
  captureError("index_not_found", `no index ${indexId} on this rtstream`, { field: "index_id" })
const alertNotFound = (alertId: string): CaptureError =>
  captureError("alert_not_found", `no alert ${alertId} on this index`, { field: "alert_id" })

/** An alert as the API shows it. */
export const alertView = (rtstreamId: RtstreamId, alert: AlertState): AlertView => ({
  alert_id: alert.alertId,
  rtstream_id: rtstreamId,
  index_id: alert.indexId,
  event_id: alert.eventId,
  label: alert.label,
  callback_url: alert.callbackUrl,
  ws_connection_id: alert.routing.ws_connection_id,
  status: alert.enabled ? "enabled" : "disabled",
})

/** Attaches an alert for `event` to the index; its view, or `index_not_found`. */
export const createAlert = async (
  store: AiStore,
  target: TranscriptionTarget,
  indexId: string,
  request: {
    readonly event: DetectionEventView
    readonly callbackUrl: string | null
    readonly wsConnectionId: string | null
  },
  parent?: SpanParent,
): Promise<Result.Result<AlertView, CaptureError>> => {
  const alertId = newAlertId()
  const stored = await storeDecision(
    store,
    target.rtstream_id,
    (state) => {
      const index = findIndex(state, indexId)
      if (index === undefined) return Result.fail(indexNotFound(indexId))
      return Result.succeed({
        type: "AlertCreated",
        id: `${target.rtstream_id}/alert/${alertId}/created`,
        rtstream_id: target.rtstream_id,
        session_id: target.session_id,
        channel_id: target.channel_id,
        time: new Date().toISOString(),
        data: {
          alert_id: alertId,
          index_id: index.indexId,
          event_id: request.event.event_id,
          label: request.event.label,
          prompt: request.event.event_prompt,
          callback_url: request.callbackUrl,
          routing: {
            account_id: target.account_id,
            end_user_id: target.end_user_id,
            collection_id: target.collection_id,
            ws_connection_id: request.wsConnectionId,
            rtstream_name: target.rtstream_name,
          },
        },
      })
    },
    parent,
  )
  if (Result.isFailure(stored)) return Result.fail(stored.failure)
  const alert = stored.success.alerts.find((a) => a.alertId === alertId)
  if (alert === undefined) throw new Error(`alert ${alertId} was stored but is not in the rtstream's history`)
  return Result.succeed(alertView(target.rtstream_id, alert))
}

/** Enables or disables an alert of the index. */
export const changeAlert = async (
  store: AiStore,
  target: TranscriptionTarget,
  indexId: string,
  alertId: string,
  enabled: boolean,
  parent?: SpanParent,
): Promise<Result.Result<AlertView, CaptureError>> => {
  const find = (state: RtstreamAi) => state.alerts.find((a) => a.alertId === alertId && a.indexId === indexId)
  const stored = await storeDecision(
    store,
    target.rtstream_id,
    (state) => {
      if (findIndex(state, indexId) === undefined) return Result.fail(indexNotFound(indexId))
      const alert = find(state)
      if (alert === undefined) return Result.fail(alertNotFound(alertId))
      if (alert.enabled === enabled) return Result.succeed(null)
      const now = new Date()
      return Result.succeed({
        type: "AlertChanged",
        id: `${target.rtstream_id}/alert/${alertId}/change/${makeIdBody(now.getTime())}`,
        rtstream_id: target.rtstream_id,
        session_id: target.session_id,
        channel_id: target.channel_id,
        time: now.toISOString(),
        data: { alert_id: alert.alertId, enabled },
      })
    },
    parent,
  )
  if (Result.isFailure(stored)) return Result.fail(stored.failure)
  const alert = find(stored.success)
  if (alert === undefined) return Result.fail(alertNotFound(alertId))
  return Result.succeed(alertView(target.rtstream_id, alert))
}

/** The index's alerts, oldest first; `index_not_found` for an index not on the rtstream. */
export const listAlerts = async (
  store: AiStore,
  rtstreamId: RtstreamId,
  indexId: string,
): Promise<Result.Result<ReadonlyArray<AlertView>, CaptureError>> => {
  const state = await store.load(rtstreamId)
  if (findIndex(state, indexId) === undefined) return Result.fail(indexNotFound(indexId))
  return Result.succeed(
    state.alerts.filter((alert) => alert.indexId === indexId).map((alert) => alertView(rtstreamId, alert)),
  )
}

/** The enabled alerts of an index. */
export const alertsOf = (state: RtstreamAi, indexId: string): Array<AlertState> =>
  state.alerts.filter((alert) => alert.indexId === indexId && alert.enabled)

/** An alert as a result fires it. */
export const firedAlert = (alert: AlertState, confidence: number, explanation: string): FiredAlert => ({
  alert_id: alert.alertId as AlertId,
  event_id: alert.eventId,
  label: alert.label,
  confidence,
  explanation,
  callback_url: alert.callbackUrl,
  routing: alert.routing,
})

/** The enabled alerts of the index that `text` fires (the deterministic matcher). */
export const firedAlerts = (state: RtstreamAi, indexId: string, text: string): Array<FiredAlert> =>
  alertsOf(state, indexId).flatMap((alert) => {
    const match = matchEvent(text, alert.label, alert.prompt)
    return match.fires ? [firedAlert(alert, match.confidence, match.explanation)] : []
  })
