/**
 * Exported videos, served from the export store any gateway can read:
 * - `GET /collection/{cid}/video/{video_id}` (API key): a VideoDB-style video object (`VideoView`);
 *   the id may also be a display's raw asset (`m-…`, an rtstream's `exported_asset_id`), answered
 *   as a `RawAssetView`; `GET /video/{video_id}?collection_id=` (`coll.getVideo`) the same;
 * - `GET /collection/{cid}/audio/{audio_id}` (API key): an audio channel's raw asset (`a-…`);
 * - `GET /media/{video_id}/{file…}`: the HLS playlist and pieces, the single-file MP4 (with byte
 *   ranges) and the raw channel assets — public by their unguessable video id, as a `stream_url`
 *   must be playable anywhere; `index.m3u8?timeline=12-20,31-40` the playlist of those ranges
 *   (seconds of the video: a search's shot);
 * - `GET /player/{video_id}[?timeline=…]`: an embeddable player page, of an export (or those
 *   ranges of it) or of a raw asset;
 * - `GET /compile/index.m3u8?v=<video_id>:<timeline>&v=…` and `GET /compile/player?…`: ranges of
 *   several exports as one playlist (a search's shots compiled, `POST /compile`), public likewise.
 */

import { type ExportStore, RangeNotSatisfiable, type RawAsset } from "@capture/media"
import {
  COMPILED_PLAYER_ROUTE,
  COMPILED_PLAYLIST_ROUTE,
  type CollectionId,
  captureError,
  compiledQuery,
  EXPORT_DOWNLOAD_FILE,
  EXPORT_PLAYLIST_FILE,
  type ExportMetadata,
  exportRangeFileUrl,
  exportRangeUrls,
  exportUrls,
  failureOf,
  httpStatusOf,
  MAX_TIMELINE_RANGES,
  MEDIA_ROUTE,
  mediaUrl,
  PLAYER_ROUTE,
  parseCompiledQuery,
  parseTimelineParam,
  type RawAssetView,
  successOf,
  VIDEO_ROUTE,
  type VideoTimeline,
  type VideoView,
} from "@capture/protocol"
import { Effect, Result, Stream } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { noteAccount } from "../access/RequestNotes.js"
import { mayReach } from "../access/RtstreamAccess.js"
import type { GatewayServicesShape } from "../GatewayContext.js"
import { playerPage } from "./PlayerPage.js"

const refusal = (code: Parameters<typeof captureError>[0], message: string, field?: string) =>
  HttpServerResponse.jsonUnsafe(
    failureOf(captureError(code, message, field === undefined ? {} : { field })),
    {
      status: httpStatusOf(code),
    },
  )

/** `bytes=start-end` (one range), or undefined for none or one we do not parse. */
const parseRange = (header: string | undefined): { start: number; end?: number } | undefined => {
  const match = /^bytes=(\d+)-(\d*)$/.exec(header ?? "")
  if (match === null) return undefined
  return { start: Number(match[1]), ...(match[2] === "" ? {} : { end: Number(match[2]) }) }
}

/**
 * The `timeline` query value of a media or player URL: undefined when absent, null when it is
 * not a timeline.
 */
const timelineOf = (url: string): VideoTimeline | null | undefined => {
  const value = new URL(url, "http://localhost").searchParams.get("timeline")
  return value === null ? undefined : (parseTimelineParam(value) ?? null)
}

const badTimeline = () =>
  refusal(
    "invalid_field",
    "timeline must be ranges of seconds of the video, start-end, comma-separated (12-20,31.5-40)",
    "timeline",
  )

/** Muxed videos and display assets are `m-…`, audio assets `a-…`. */
const ID_PATTERN = { video: /^m-[A-Za-z0-9]{1,64}$/, audio: /^a-[A-Za-z0-9]{1,64}$/ } as const

/** Where a raw asset's file is served (MP4 for video, M4A for audio). */
export const rawAssetFileUrl = (publicUrl: string, { asset, metadata }: RawAsset): string =>
  mediaUrl(publicUrl, metadata.video_id, asset.file)

const rawAssetView = (
  publicUrl: string,
  collectionId: CollectionId,
  { asset, metadata }: RawAsset,
): RawAssetView => ({
  id: asset.asset_id,
  collection_id: collectionId,
  session_id: metadata.session_id,
  video_id: metadata.video_id,
  channel_id: asset.channel_id,
  type: asset.type,
  name: `${metadata.session_id} ${asset.channel_id}`,
  length: asset.duration_ms / 1000,
  download_url: rawAssetFileUrl(publicUrl, { asset, metadata }),
  metadata: asset,
})

const videoView = (publicUrl: string, collectionId: CollectionId, metadata: ExportMetadata): VideoView => ({
  id: metadata.video_id,
  collection_id: collectionId,
  name: `${metadata.session_id} ${metadata.video_channel_id ?? "audio"}`,
  length: metadata.duration_ms / 1000,
  ...exportUrls(publicUrl, metadata.video_id),
  metadata,
})

export const exportRoutes = (services: GatewayServicesShape, exports: ExportStore) => {
  /**
   * An export object by id (`video_id` or `audio_id` in the path), shown only to the account of
   * the session that made it, in that session's collection; anything else is "not found".
   */
  const exported = (kind: "video" | "audio") =>
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const params = yield* HttpRouter.params
      // `GET /video/{id}?collection_id=` names the collection in the query (VideoDB's SDK does).
      const collectionId =
        params.collection_id ?? new URL(request.url, "http://localhost").searchParams.get("collection_id")
      const principal = yield* Effect.promise(() =>
        services.accounts.authenticate(request.headers["x-access-token"]),
      )
      if (Result.isFailure(principal)) {
        return HttpServerResponse.jsonUnsafe(failureOf(principal.failure), {
          status: httpStatusOf(principal.failure.error_code),
        })
      }
      yield* noteAccount(principal.success.account_id)
      const field = `${kind}_id`
      const id = params[field] ?? ""
      const notFound = refusal("not_found", `no ${kind} ${id}`, field)
      if (!ID_PATTERN[kind].test(id)) return notFound
      // A video id names a muxed video or a display's raw asset; an audio id an audio raw asset.
      const publicUrl = services.config.publicUrl
      const video = kind === "video" ? yield* Effect.promise(() => exports.get(id)) : undefined
      const raw = video === undefined ? yield* Effect.promise(() => exports.asset(id)) : undefined
      const found =
        video !== undefined
          ? { session_id: video.session_id, view: (c: CollectionId) => videoView(publicUrl, c, video) }
          : raw !== undefined && raw.asset.type === kind
            ? {
                session_id: raw.metadata.session_id,
                view: (c: CollectionId) => rawAssetView(publicUrl, c, raw),
              }
            : undefined
      if (found === undefined) return notFound
      const session = yield* Effect.promise(() => services.runtime.host.load(found.session_id))
      const context = session.state.context
      // The session's account, and a client token's own end user only (as for the session itself).
      if (
        !mayReach(principal.success, context) ||
        context.collection_id === null ||
        (collectionId !== null && context.collection_id !== collectionId)
      ) {
        return notFound
      }
      return HttpServerResponse.jsonUnsafe(successOf(found.view(context.collection_id)))
    })

  const video = HttpRouter.add("GET", "/collection/:collection_id/video/:video_id", exported("video"))
  const audio = HttpRouter.add("GET", "/collection/:collection_id/audio/:audio_id", exported("audio"))
  const videoBySdk = HttpRouter.add("GET", VIDEO_ROUTE, exported("video"))

  const media = HttpRouter.add(
    "GET",
    MEDIA_ROUTE,
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const params = yield* HttpRouter.params
      const videoId = params.video_id ?? ""
      const file = params["*"] ?? ""
      const range = parseRange(request.headers.range)
      const ranged = file === EXPORT_PLAYLIST_FILE || file === EXPORT_DOWNLOAD_FILE
      const timeline = ranged ? timelineOf(request.url) : undefined
      if (timeline === null) return badTimeline()
      const opened = yield* Effect.tryPromise({
        try: () =>
          timeline === undefined
            ? exports.open(videoId, file, range)
            : file === EXPORT_PLAYLIST_FILE
              ? exports.rangePlaylist(videoId, timeline)
              : exports.rangeMp4(videoId, timeline, range),
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
    PLAYER_ROUTE,
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const params = yield* HttpRouter.params
      const videoId = params.video_id ?? ""
      const publicUrl = services.config.publicUrl
      const notFound = refusal("not_found", `no video ${videoId}`, "video_id")
      if (!ID_PATTERN.video.test(videoId) && !ID_PATTERN.audio.test(videoId)) return notFound
      const timeline = timelineOf(request.url)
      if (timeline === null) return badTimeline()
      const metadata = yield* Effect.promise(() => exports.get(videoId))
      if (metadata !== undefined) {
        if (timeline === undefined) {
          const { stream_url, download_url } = exportUrls(publicUrl, videoId)
          return HttpServerResponse.html(
            playerPage(videoId, { hls: stream_url, files: [download_url] }, publicUrl),
          )
        }
        // The ranges' playlist; without HLS, the MP4 of the same ranges.
        return HttpServerResponse.html(
          playerPage(
            videoId,
            {
              hls: exportRangeUrls(publicUrl, videoId, timeline).stream_url,
              files: [exportRangeFileUrl(publicUrl, videoId, timeline)],
            },
            publicUrl,
          ),
        )
      }
      // A raw asset (an exported rtstream): its file alone.
      const raw = yield* Effect.promise(() => exports.asset(videoId))
      if (raw === undefined) return notFound
      return HttpServerResponse.html(
        playerPage(videoId, { files: [rawAssetFileUrl(publicUrl, raw)] }, publicUrl),
      )
    }),
  )

  /** The compiled stream's parts (`?v=…&v=…`), or a refusal naming `v`. */
  const compiledParts = (url: string) => {
    const parts = parseCompiledQuery(new URL(url, "http://localhost").searchParams.getAll("v"))
    return parts === undefined
      ? Result.fail(
          refusal(
            "invalid_field",
            `v must be <video_id>:<timeline> (m-…:12-20,31.5-40), once per video, at most ${MAX_TIMELINE_RANGES} ranges in all`,
            "v",
          ),
        )
      : Result.succeed(parts)
  }

  const compiledPlaylist = HttpRouter.add(
    "GET",
    COMPILED_PLAYLIST_ROUTE,
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const parts = compiledParts(request.url)
      if (Result.isFailure(parts)) return parts.failure
      const found = yield* Effect.promise(() =>
        exports.compiledPlaylist(
          parts.success.map((part) => ({ videoId: part.video_id, timeline: part.timeline })),
          // Relative to /compile/: each export's own files.
          (videoId) => `../media/${videoId}/`,
        ),
      )
      if (found === undefined)
        return refusal("not_found", "no such video, or no range within its videos", "v")
      return HttpServerResponse.uint8Array(yield* Effect.promise(() => found.bytes()), {
        contentType: found.contentType,
      })
    }),
  )

  const compiledPlayer = HttpRouter.add(
    "GET",
    COMPILED_PLAYER_ROUTE,
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const parts = compiledParts(request.url)
      if (Result.isFailure(parts)) return parts.failure
      const publicUrl = services.config.publicUrl
      const query = compiledQuery(parts.success)
      // Without HLS, each video's ranges as an MP4, played one after another.
      return HttpServerResponse.html(
        playerPage(
          "compiled shots",
          {
            hls: `${publicUrl}${COMPILED_PLAYLIST_ROUTE}?${query}`,
            files: parts.success.map((part) => exportRangeFileUrl(publicUrl, part.video_id, part.timeline)),
          },
          publicUrl,
        ),
      )
    }),
  )

  return [video, audio, videoBySdk, media, player, compiledPlaylist, compiledPlayer] as const
}
