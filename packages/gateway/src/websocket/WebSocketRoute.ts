/**
 * `GET /ws?token=…`: the socket `GET /collection/{cid}/websocket` hands out. The credential is
 * checked before the upgrade (a refused one gets the failure envelope, not a socket). The first
 * message names the connection; lifecycle events follow for sessions that name it.
 */
import type { IncomingMessage } from "node:http"
import { captureError, failureOf, httpStatusOf, makeIdBody } from "@capture/protocol"
import { Effect, Result } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import type { AccountStore } from "../accounts/AccountStore.js"
import { socketsByConnection } from "./BoundedWebSocket.js"
import type { WebSocketHub } from "./WebSocketHub.js"

export const WEBSOCKET_PATH = "/ws"

export const webSocketRoute = (accounts: AccountStore, hub: WebSocketHub) =>
  HttpRouter.add(
    "GET",
    WEBSOCKET_PATH,
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const query = new URL(request.url, "http://localhost").searchParams
      const credential = query.get("token") ?? request.headers["x-access-token"]
      const result = yield* Effect.promise(() => accounts.authenticate(credential ?? undefined))
      if (Result.isFailure(result)) {
        return HttpServerResponse.jsonUnsafe(failureOf(result.failure), {
          status: httpStatusOf(result.failure.error_code),
        })
      }
      if (request.headers.upgrade?.toLowerCase() !== "websocket") {
        const refused = captureError("invalid_request", "this endpoint speaks WebSocket only", {
          field: "upgrade",
        })
        return HttpServerResponse.jsonUnsafe(failureOf(refused), { status: 426 })
      }
      const socket = yield* request.upgrade
      // The reader completes the upgrade; writes wait for it.
      const reader = yield* socket.reader
      const writer = yield* socket.writer
      const connectionId = `ws-${makeIdBody()}`
      yield* writer.write(JSON.stringify({ connection_id: connectionId }))
      const raw = socketsByConnection.get((request.source as IncomingMessage).socket)
      const detach = raw === undefined ? () => {} : hub.attach(connectionId, result.success.account_id, raw)
      // Read until the peer goes away; clients have nothing to say, so their messages are ignored.
      yield* Effect.forever(reader.pull).pipe(Effect.ignore, Effect.ensuring(Effect.sync(detach)))
      return HttpServerResponse.empty()
    }).pipe(Effect.scoped),
  )
