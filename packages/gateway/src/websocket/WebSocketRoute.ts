/**
 * `GET /ws`: the socket `GET /collection/{cid}/websocket` hands out. The credential is checked
 * before the upgrade (a refused one gets the failure envelope, not a socket): in the URL
 * (`?token=`) only a WebSocket token, which opens sockets and nothing else; in the
 * `x-access-token` header any credential. The first message names the connection; lifecycle
 * events follow for sessions that name it (with `&follow=collection`, for every session of the
 * collection it was handed out for, as the console asks), until the peer leaves or a credential
 * behind the socket is revoked.
 */
import type { IncomingMessage } from "node:http"
import { type CaptureError, captureError, failureOf, httpStatusOf } from "@capture/protocol"
import { Effect, Result } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { noteAccount } from "../access/RequestNotes.js"
import { type AccountStore, credentialChain } from "../accounts/AccountStore.js"
import { socketsByConnection } from "./BoundedWebSocket.js"
import type { ConnectionIds } from "./ConnectionIds.js"
import { CLOSE_REVOKED, type WebSocketHub } from "./WebSocketHub.js"

export const WEBSOCKET_PATH = "/ws"

const refused = (error: CaptureError) =>
  HttpServerResponse.jsonUnsafe(failureOf(error), { status: httpStatusOf(error.error_code) })

/** Why a credential in the URL is refused before it is even looked up, if it is. */
const refuseInUrl = (token: string): CaptureError | undefined =>
  token.startsWith("sk-")
    ? captureError(
        "unauthorized",
        "an API key is never accepted in a URL: send it as x-access-token, or open the websocket_url of GET /collection/{collection_id}/websocket",
        { field: "token" },
      )
    : undefined

export const webSocketRoute = (accounts: AccountStore, hub: WebSocketHub, connectionIds: ConnectionIds) =>
  HttpRouter.add(
    "GET",
    WEBSOCKET_PATH,
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const inUrl = new URL(request.url, "http://localhost").searchParams.get("token")
      if (inUrl !== null) {
        const refusal = refuseInUrl(inUrl)
        if (refusal !== undefined) return refused(refusal)
      }
      const result = yield* Effect.promise(() =>
        accounts.authenticate(inUrl ?? request.headers["x-access-token"], "websocket"),
      )
      if (Result.isFailure(result)) return refused(result.failure)
      const principal = result.success
      yield* noteAccount(principal.account_id)
      if (inUrl !== null && (principal.kind !== "client_token" || principal.scope !== "websocket")) {
        return refused(
          captureError(
            "unauthorized",
            "only a WebSocket token goes in a URL: open the websocket_url of GET /collection/{collection_id}/websocket, or send the credential as x-access-token",
            { field: "token" },
          ),
        )
      }
      if (request.headers.upgrade?.toLowerCase() !== "websocket") {
        const notUpgrade = captureError("invalid_request", "this endpoint speaks WebSocket only", {
          field: "upgrade",
        })
        return HttpServerResponse.jsonUnsafe(failureOf(notUpgrade), { status: 426 })
      }
      const socket = yield* request.upgrade
      // The reader completes the upgrade; writes wait for it.
      const reader = yield* socket.reader
      const writer = yield* socket.writer
      const owner = {
        account_id: principal.account_id,
        end_user_id: principal.kind === "client_token" ? principal.end_user_id : null,
      }
      const connectionId = connectionIds.mint(owner)
      yield* writer.write(JSON.stringify({ connection_id: connectionId }))
      const raw = socketsByConnection.get((request.source as IncomingMessage).socket)
      // The collection it was handed out for: AI results of that collection's rtstreams come here too.
      const query = new URL(request.url, "http://localhost").searchParams
      const collectionId = query.get("collection_id") ?? undefined
      const followsCollection = query.get("follow") === "collection"
      const detach =
        raw === undefined
          ? () => {}
          : hub.attach(connectionId, owner, credentialChain(principal), raw, collectionId, followsCollection)
      // A revocation heard between the check above and the attach closed nothing: look once more.
      const still = yield* Effect.promise(() =>
        accounts.authenticate(inUrl ?? request.headers["x-access-token"], "websocket"),
      )
      if (Result.isFailure(still)) raw?.close(CLOSE_REVOKED, "credential revoked")
      // Read until the peer goes away; clients have nothing to say, so their messages are ignored.
      yield* Effect.forever(reader.pull).pipe(Effect.ignore, Effect.ensuring(Effect.sync(detach)))
      return HttpServerResponse.empty()
    }).pipe(Effect.scoped),
  )
