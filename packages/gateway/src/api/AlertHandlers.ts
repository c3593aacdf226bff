/**
 * Handlers of the event and alert routes. Events belong to the caller's account; an alert is
 * attached through the index's rtstream (`RtstreamAccess`: another account's is not found), for an
 * event of the same account (`event_not_found` otherwise), with its `callback_url` checked against
 * the callback-URL policy lifecycle webhooks use and its socket one the caller may name.
 */
import { changeAlert, createAlert, listAlerts } from "@capture/ai"
import { captureError, successOf } from "@capture/protocol"
import { Effect, Result } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { GatewayServices } from "../GatewayContext.js"
import { CaptureApi, CurrentPrincipal } from "./CaptureApi.js"
import { aiCommand, call, refuse } from "./Handlers.js"
import { checkNamedSocket, findRtstream } from "./TranscriptionHandlers.js"

export const AlertLive = HttpApiBuilder.group(CaptureApi, "alerts", (handlers) =>
  Effect.gen(function* () {
    const services = yield* GatewayServices
    return handlers
      .handle("createEvent", ({ payload }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const event = yield* aiCommand("createEvent", "storing the event", {}, () =>
            services.detectionEvents.create(principal.account_id, payload),
          )
          return successOf(event)
        }),
      )
      .handle("listEvents", () =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const events = yield* call("reading the events", () =>
            services.detectionEvents.list(principal.account_id),
          )
          return successOf({ events })
        }),
      )
      .handle("createAlert", ({ params, payload }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const target = yield* findRtstream(services, principal, params.rtstream_id)
          const event = yield* call("reading the event", () =>
            services.detectionEvents.get(target.account_id, payload.event_id),
          )
          if (event === undefined) {
            return yield* refuse(
              captureError("event_not_found", `no event ${payload.event_id} in this account`, {
                field: "event_id",
              }),
            )
          }
          const url = payload.callback_url ?? null
          if (url !== null) {
            const checked = yield* call("checking the callback URL", () =>
              services.checkCallbackUrl(url, "callback_url"),
            )
            if (Result.isFailure(checked)) return yield* refuse(checked.failure)
          }
          const socket = payload.ws_connection_id ?? null
          yield* checkNamedSocket(services, principal, target, socket)
          const created = yield* aiCommand("createAlert", "storing the alert", target, (span) =>
            createAlert(
              services.ai,
              target,
              params.index_id,
              { event, callbackUrl: url, wsConnectionId: socket },
              span,
            ),
          )
          if (Result.isFailure(created)) return yield* refuse(created.failure)
          return successOf(created.success)
        }),
      )
      .handle("listAlerts", ({ params }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const target = yield* findRtstream(services, principal, params.rtstream_id)
          const alerts = yield* call("reading the alerts", () =>
            listAlerts(services.ai, target.rtstream_id, params.index_id),
          )
          if (Result.isFailure(alerts)) return yield* refuse(alerts.failure)
          return successOf({ alerts: alerts.success })
        }),
      )
      .handle("setAlertStatus", ({ params, payload }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const target = yield* findRtstream(services, principal, params.rtstream_id)
          const changed = yield* aiCommand("setAlertStatus", "storing the alert's status", target, (span) =>
            changeAlert(
              services.ai,
              target,
              params.index_id,
              params.alert_id,
              payload.action === "enable",
              span,
            ),
          )
          if (Result.isFailure(changed)) return yield* refuse(changed.failure)
          return successOf(changed.success)
        }),
      )
  }),
)
