/**
 * Handlers of the search routes: the caller's account always, the collection or the rtstream
 * (reached through `RtstreamAccess`), and a client token's end user only. The process's search
 * projection first catches up with the results stream, so a stored result is found.
 */
import type { SearchHit, SearchKind, SearchQuery } from "@capture/ai"
import { type RtstreamId, type SearchRequest, type SearchResult, successOf } from "@capture/protocol"
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import type { Principal } from "../accounts/AccountStore.js"
import { GatewayServices, type GatewayServicesShape } from "../GatewayContext.js"
import { clipUrls } from "../ingest/ClipRoutes.js"
import { CaptureApi, CurrentPrincipal } from "./CaptureApi.js"
import { call } from "./Handlers.js"
import { findRtstream } from "./TranscriptionHandlers.js"

const kindOf = (indexType: SearchRequest["index_type"]): SearchKind | undefined => {
  switch (indexType) {
    case "spoken_word":
    case "transcript":
      return "transcript"
    case "scene":
    case "visual":
      return "visual"
    case "audio":
      return "audio"
    default:
      return undefined
  }
}

/** A shot as the wire has it, with signed URLs playing its range of the rtstream (`generateStream`'s). */
const resultOf = (services: GatewayServicesShape, hit: SearchHit): SearchResult => {
  const urls = clipUrls(services.config.publicUrl, services.signer, {
    sessionId: hit.session_id,
    // The capture channel (`mic:default`): what media records and clips name.
    channelId: hit.rtstream_name,
    fromMs: Math.floor(hit.start * 1000),
    toMs: Math.ceil(hit.end * 1000),
  })
  return {
    rtstream_id: hit.rtstream_id as RtstreamId,
    rtstream_name: hit.rtstream_name,
    session_id: hit.session_id,
    start: hit.start,
    end: hit.end,
    text: hit.text,
    score: hit.score,
    kind: hit.kind,
    scene_index_id: hit.index_id,
    scene_index_name: hit.index_name,
    metadata: { collection_id: hit.collection_id },
    stream_url: urls.hls,
    player_url: urls.player,
  }
}

/** The end user a client token is bound to: its searches see only that end user's sessions. */
export const endUserOf = (principal: Principal): string | undefined =>
  principal.kind === "client_token" && principal.end_user_id !== null ? principal.end_user_id : undefined

const search = (services: GatewayServicesShape, query: SearchQuery) =>
  call("searching", async () => {
    await services.search.catchUp()
    return { results: services.search.index.search(query).map((hit) => resultOf(services, hit)) }
  })

const scopeOf = (payload: SearchRequest) => ({
  query: payload.query,
  kind: kindOf(payload.index_type),
  index_id: payload.scene_index_id ?? undefined,
  limit: payload.result_threshold ?? undefined,
  score_threshold: payload.score_threshold ?? undefined,
})

export const SearchLive = HttpApiBuilder.group(CaptureApi, "search", (handlers) =>
  Effect.gen(function* () {
    const services = yield* GatewayServices
    return handlers
      .handle("searchCollection", ({ params, payload }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const results = yield* search(services, {
            ...scopeOf(payload),
            account_id: principal.account_id,
            collection_id: params.collection_id,
            end_user_id: endUserOf(principal),
          })
          return successOf(results)
        }),
      )
      .handle("searchRtstream", ({ params, payload }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const target = yield* findRtstream(services, principal, params.rtstream_id)
          const results = yield* search(services, {
            ...scopeOf(payload),
            account_id: target.account_id,
            rtstream_id: target.rtstream_id,
          })
          return successOf(results)
        }),
      )
  }),
)
