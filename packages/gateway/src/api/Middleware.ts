/**
 * The API's middleware: authentication by `x-access-token`, and request decoding failures turned
 * into the failure envelope naming the field at fault, instead of effect's empty 400. Both run
 * before a handler, so nothing is written for a refused request.
 */
import { captureError, failureOf, toCaptureError } from "@capture/protocol"
import { Effect, Layer, Redacted, Result } from "effect"
import { HttpApiMiddleware } from "effect/http-api"
import { noteAccount } from "../access/RequestNotes.js"
import { GatewayServices } from "../GatewayContext.js"
import { Authentication, CurrentPrincipal, RequestDecoding } from "./CaptureApi.js"
import { BadRequest, toFailure, type Unauthorized } from "./Failures.js"

export const AuthenticationLive = Layer.effect(
  Authentication,
  Effect.gen(function* () {
    const { accounts } = yield* GatewayServices
    return {
      accessToken: (httpEffect, { credential }) =>
        Effect.gen(function* () {
          const presented = Redacted.value(credential)
          const result = yield* Effect.tryPromise({
            try: () => accounts.authenticate(presented === "" ? undefined : presented),
            catch: (error) => error,
          }).pipe(
            // The account store is unreachable: not the client's fault, but nothing to serve either.
            Effect.orDie,
          )
          if (Result.isFailure(result)) return yield* Effect.fail(toFailure(result.failure) as Unauthorized)
          yield* noteAccount(result.success.account_id)
          return yield* Effect.provideService(httpEffect, CurrentPrincipal, result.success)
        }),
    }
  }),
)

/** A body, query or path that does not decode: 400 with the field at fault. */
export const RequestDecodingLive = HttpApiMiddleware.layerSchemaErrorTransform(RequestDecoding, (error) => {
  const refused = toCaptureError(error.cause)
  const where = error.kind === "Params" ? "path" : error.kind === "Query" ? "query" : "body"
  return Effect.fail(
    refused.message === "Expected a valid JSON body"
      ? new BadRequest(
          failureOf(captureError("invalid_json", "the body is not valid JSON", { field: "body" })),
        )
      : new BadRequest(
          failureOf(
            captureError(refused.error_code, `${where}: ${refused.message}`, {
              field: refused.field ?? where,
            }),
          ),
        ),
  )
})
