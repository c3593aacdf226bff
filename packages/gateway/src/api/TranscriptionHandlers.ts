/**
 * Handlers of the transcription routes: find the rtstream and check who asks, as every route
 * under `/rtstream/{id}` does (`RtstreamAccess`: another account's or, for a client token, another
 * end user's rtstream is not found), then start, stop or read through `@capture/ai`.
 */
import { controlTranscription, readTranscript, type TranscriptionTarget } from "@capture/ai"
import { captureError, type RtstreamId, successOf } from "@capture/protocol"
import { Effect, Result } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { authorizeRtstream, rtstreamNotFound } from "../access/RtstreamAccess.js"
import type { Principal } from "../accounts/AccountStore.js"
import { GatewayServices, type GatewayServicesShape } from "../GatewayContext.js"
import { CaptureApi, CurrentPrincipal } from "./CaptureApi.js"
import type { Failure } from "./Failures.js"
import { aiCommand, call, refuse } from "./Handlers.js"

/**
 * Refuses a `ws_connection_id` the caller may not name for this rtstream: results go only to a
 * socket of the rtstream's end user, or an account-wide one.
 */
export const checkNamedSocket = (
  services: GatewayServicesShape,
  principal: Principal,
  target: TranscriptionTarget,
  socket: string | null | undefined,
): Effect.Effect<void, Failure> =>
  socket === null || socket === undefined || services.connectionIds.mayName(socket, principal, target)
    ? Effect.void
    : refuse(
        captureError(
          "forbidden",
          "ws_connection_id is not a WebSocket of this rtstream's end user or of its account",
          { field: "ws_connection_id" },
        ),
      )

/** The rtstream as a transcription target, if `principal` may reach it (`RtstreamAccess`). */
export const findRtstream = (
  services: GatewayServicesShape,
  principal: Principal,
  rtstreamId: RtstreamId,
): Effect.Effect<TranscriptionTarget, Failure> =>
  Effect.gen(function* () {
    const reached = yield* call("finding the rtstream", () =>
      authorizeRtstream(services.runtime, principal, rtstreamId),
    )
    if (Result.isFailure(reached)) return yield* refuse(reached.failure)
    const { loaded, rtstream } = reached.success
    const context = loaded.state.context
    if (context.session_id === null || context.collection_id === null) {
      return yield* refuse(rtstreamNotFound(rtstreamId))
    }
    return {
      rtstream_id: rtstream.rtstream_id,
      rtstream_name: rtstream.name,
      session_id: context.session_id,
      // The capture channel (`mic:default`), which media records name; `rtstream.channel_id` is
      // the SDK's category (`mic`).
      channel_id: rtstream.name,
      account_id: context.account_id,
      end_user_id: context.end_user_id,
      collection_id: context.collection_id,
    }
  })

export const TranscriptionLive = HttpApiBuilder.group(CaptureApi, "transcription", (handlers) =>
  Effect.gen(function* () {
    const services = yield* GatewayServices
    return handlers
      .handle("controlTranscription", ({ params, payload }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const target = yield* findRtstream(services, principal, params.rtstream_id)
          yield* checkNamedSocket(services, principal, target, payload.ws_connection_id)
          const outcome = yield* aiCommand(
            "controlTranscription",
            "storing the transcription's start or stop",
            target,
            (span) => controlTranscription(services.ai, target, payload, services.transcription, span),
          )
          if (Result.isFailure(outcome)) return yield* refuse(outcome.failure)
          return successOf(outcome.success)
        }),
      )
      .handle("getTranscript", ({ params, query }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const target = yield* findRtstream(services, principal, params.rtstream_id)
          const page = yield* call("reading the transcript", () =>
            readTranscript(services.ai, target.rtstream_id, query),
          )
          return successOf(page)
        }),
      )
  }),
)
