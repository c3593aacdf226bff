/**
 * Handlers of the index routes: find the rtstream and check who asks (`RtstreamAccess`, as every
 * route under `/rtstream/{id}`), then create, list, read, start, stop or re-prompt through
 * `@capture/ai`. A socket named by `ws_connection_id` must be one the caller may name. An audio
 * index starts the rtstream's transcription (`auto_start_transcript`, default true).
 */
import {
  changeIndex,
  controlTranscription,
  createIndex,
  decideCreateIndex,
  emptyRtstreamAi,
  getIndex,
  indexKindOf,
  listIndexes,
  readScenes,
} from "@capture/ai"
import { successOf } from "@capture/protocol"
import { Effect, Result } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { GatewayServices } from "../GatewayContext.js"
import { CaptureApi, CurrentPrincipal } from "./CaptureApi.js"
import { aiCommand, call, refuse } from "./Handlers.js"
import { checkNamedSocket, findRtstream } from "./TranscriptionHandlers.js"

export const SceneIndexLive = HttpApiBuilder.group(CaptureApi, "sceneIndexes", (handlers) =>
  Effect.gen(function* () {
    const services = yield* GatewayServices
    return handlers
      .handle("createSceneIndex", ({ params, payload }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const target = yield* findRtstream(services, principal, params.rtstream_id)
          yield* checkNamedSocket(services, principal, target, payload.ws_connection_id)
          // An audio index reads the transcript: it starts transcription unless told not to
          // (a repeat when it runs already). An engine this server lacks refuses the index too.
          // Checked first, so a refused index starts nothing.
          const checked = decideCreateIndex(
            emptyRtstreamAi(target.rtstream_id),
            target,
            payload,
            new Date(),
            undefined,
            services.chatModels,
          )
          if (Result.isFailure(checked)) return yield* refuse(checked.failure)
          if (indexKindOf(target) === "audio" && payload.auto_start_transcript !== false) {
            const started = yield* aiCommand(
              "controlTranscription",
              "starting transcription",
              target,
              (span) =>
                controlTranscription(services.ai, target, { action: "start" }, services.transcription, span),
            )
            if (Result.isFailure(started)) return yield* refuse(started.failure)
          }
          const created = yield* aiCommand("createSceneIndex", "storing the index", target, (span) =>
            createIndex(services.ai, target, payload, services.chatModels, span),
          )
          if (Result.isFailure(created)) return yield* refuse(created.failure)
          return successOf(created.success)
        }),
      )
      .handle("listSceneIndexes", ({ params }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const target = yield* findRtstream(services, principal, params.rtstream_id)
          const indexes = yield* call("reading the indexes", () =>
            listIndexes(services.ai, target.rtstream_id),
          )
          return successOf({ scene_indexes: indexes })
        }),
      )
      .handle("getSceneIndex", ({ params }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const target = yield* findRtstream(services, principal, params.rtstream_id)
          const index = yield* call("reading the index", () =>
            getIndex(services.ai, target.rtstream_id, params.index_id),
          )
          if (Result.isFailure(index)) return yield* refuse(index.failure)
          return successOf(index.success)
        }),
      )
      .handle("getScenes", ({ params, query }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const target = yield* findRtstream(services, principal, params.rtstream_id)
          const page = yield* call("reading the scenes", () =>
            readScenes(services.ai, target.rtstream_id, params.index_id, query),
          )
          if (Result.isFailure(page)) return yield* refuse(page.failure)
          return successOf(page.success)
        }),
      )
      .handle("updateSceneIndex", ({ params, payload }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const target = yield* findRtstream(services, principal, params.rtstream_id)
          const changed = yield* aiCommand("updateSceneIndex", "storing the prompt", target, (span) =>
            changeIndex(services.ai, target, params.index_id, { prompt: payload.prompt }, span),
          )
          if (Result.isFailure(changed)) return yield* refuse(changed.failure)
          return successOf({ success: true, ...changed.success })
        }),
      )
      .handle("setSceneIndexStatus", ({ params, payload }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const target = yield* findRtstream(services, principal, params.rtstream_id)
          const changed = yield* aiCommand(
            "setSceneIndexStatus",
            "storing the index's start or stop",
            target,
            (span) => changeIndex(services.ai, target, params.index_id, payload, span),
          )
          if (Result.isFailure(changed)) return yield* refuse(changed.failure)
          return successOf(changed.success)
        }),
      )
  }),
)
