/**
 * Exported videos, served from the export store any gateway can read:
 * - `GET /collection/{cid}/video/{video_id}` (API key): a VideoDB-style video object;
 * - `GET /media/{video_id}/{file…}`: the HLS playlist and pieces, the single-file MP4 (with byte
 *   ranges) and the raw channel assets — public by their unguessable video id, as a `stream_url`
 *   must be playable anywhere;
 * - `GET /player/{video_id}`: an embeddable player page.
 */

import { type ExportStore, playerPage, RangeNotSatisfiable } from "@capture/muxer"
import { captureError, failureOf, httpStatusOf } from "@capture/protocol"
import { Effect, Result, Stream } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import type { GatewayServicesShape } from "../GatewayContext.js"

const refusal = (code: Parameters<typeof captureError>[0], message: string, field?: string) =>
  HttpServerResponse.jsonUnsafe(
    failureOf(captureError(code, message, field === undefined ? {} : { field })),
    {
      status: httpStatusOf(code),
    },
  )

const urls = (publicUrl: string, videoId: string) => ({
  stream_url: `${publicUrl}/media/${videoId}/index.m3u8`,
  player_url: `${publicUrl}/player/${videoId}`,
  download_url: `${publicUrl}/media/${videoId}/video.mp4`,
})

/** `bytes=start-end` (one range), or undefined for none or one we do not parse. */
const parseRange = (header: string | undefined): { start: number; end?: number } | undefined => {
  const match = /^bytes=(\d+)-(\d*)$/.exec(header ?? "")
  if (match === null) return undefined
  return { start: Number(match[1]), ...(match[2] === "" ? {} : { end: Number(match[2]) }) }
}

export const exportRoutes = (services: GatewayServicesShape, exports: ExportStore) => {
  const video = HttpRouter.add(
    "GET",
    "/collection/:collection_id/video/:video_id",
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const params = yield* HttpRouter.params
      const principal = yield* Effect.promise(() =>
        services.accounts.authenticate(request.headers["x-access-token"]),
      )
      if (Result.isFailure(principal)) {
        return HttpServerResponse.jsonUnsafe(failureOf(principal.failure), {
          status: httpStatusOf(principal.failure.error_code),
        })
      }
      const videoId = params.video_id ?? ""
      const metadata = /^m-[A-Za-z0-9]{1,64}$/.test(videoId)
        ? yield* Effect.promise(() => exports.get(videoId))
        : undefined
      if (metadata === undefined) return refusal("not_found", `no video ${videoId}`, "video_id")
      // The video belongs to a session: only that session's account, in its collection, sees it.
      const session = yield* Effect.promise(() => services.runtime.host.load(metadata.session_id))
      const context = session.state.context
      if (
        context.account_id !== principal.success.account_id ||
        context.collection_id !== params.collection_id
      ) {
        return refusal("not_found", `no video ${videoId}`, "video_id")
      }
      return HttpServerResponse.jsonUnsafe({
        success: true,
        data: {
          id: videoId,
          collection_id: context.collection_id,
          name: `${metadata.session_id} ${metadata.video_channel_id ?? "audio"}`,
          length: metadata.duration_ms / 1000,
          ...urls(services.config.publicUrl, videoId),
          metadata,
        },
      })
    }),
  )

  const media = HttpRouter.add(
    "GET",
    "/media/:video_id/*",
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const params = yield* HttpRouter.params
      const videoId = params.video_id ?? ""
      const file = params["*"] ?? ""
      const range = parseRange(request.headers.range)
      const opened = yield* Effect.tryPromise({
        try: () => exports.open(videoId, file, range),
        catch: (error) => error,
      }).pipe(Effect.result)
      if (Result.isFailure(opened)) {
        if (opened.failure instanceof RangeNotSatisfiable) {
          return HttpServerResponse.empty({ status: 416 }).pipe(
            HttpServerResponse.setHeader("content-range", `bytes */${opened.failure.size}`),
          )
        }
        return yield* Effect.die(opened.failure)
      }
      const found = opened.success
      if (found === undefined) return refusal("not_found", `no file ${file} in video ${videoId}`)
      const length = found.end - found.start + 1
      const response = HttpServerResponse.stream(
        Stream.fromAsyncIterable(found.body, (e) => e),
        {
          status: range === undefined ? 200 : 206,
          contentType: found.contentType,
          contentLength: length,
        },
      ).pipe(HttpServerResponse.setHeader("accept-ranges", "bytes"))
      return range === undefined
        ? response
        : response.pipe(
            HttpServerResponse.setHeader("content-range", `bytes ${found.start}-${found.end}/${found.size}`),
          )
    }),
  )

  const player = HttpRouter.add(
    "GET",
    "/player/:video_id",
    Effect.gen(function* () {
      const params = yield* HttpRouter.params
      const videoId = params.video_id ?? ""
      const metadata = /^m-[A-Za-z0-9]{1,64}$/.test(videoId)
        ? yield* Effect.promise(() => exports.get(videoId))
        : undefined
      if (metadata === undefined) return refusal("not_found", `no video ${videoId}`, "video_id")
      return HttpServerResponse.html(playerPage(videoId, urls(services.config.publicUrl, videoId).stream_url))
    }),
  )

  return [video, media, player] as const
}
