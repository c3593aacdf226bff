/**
 * Live playback while recording: an HLS playlist per channel built from the segments stored so
 * far, and the segments themselves, at signed URLs (`?exp&sig`) a browser player can fetch.
 * The playlist ends (`#EXT-X-ENDLIST`) once the channel's final segment is in or the session
 * stopped recording. `…/player` with the same signature is a player page of the playlist.
 */

import type { MediaStore } from "@capture/media"
import {
  captureError,
  failureOf,
  httpStatusOf,
  type MediaSegment,
  SEGMENT_CONTENT_TYPE,
} from "@capture/protocol"
import { Effect } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import type { UrlSigner } from "../access/SignedUrls.js"
import { playerPage } from "../exports/PlayerPage.js"
import type { GatewayServicesShape } from "../GatewayContext.js"

const livePath = (sessionId: string, channelId: string) =>
  `/live/${sessionId}/${encodeURIComponent(channelId)}`

/** The signed URL of a channel's live playlist. */
export const liveStreamUrl = (
  publicUrl: string,
  signer: UrlSigner,
  sessionId: string,
  channelId: string,
): string => {
  const path = `${livePath(sessionId, channelId)}/index.m3u8`
  return `${publicUrl}${path}?${signer.query(path)}`
}

/** An HLS media playlist of `segments` (one channel, by index); gaps become discontinuities. */
export const hlsPlaylist = (
  segments: ReadonlyArray<MediaSegment>,
  uri: (segment: MediaSegment) => string,
  ended: boolean,
): string => {
  const target = Math.max(1, ...segments.map((s) => Math.ceil(s.duration_ms / 1000)))
  const lines = ["#EXTM3U", "#EXT-X-VERSION:3", `#EXT-X-TARGETDURATION:${target}`, "#EXT-X-MEDIA-SEQUENCE:0"]
  let previous: number | undefined
  for (const segment of segments) {
    if (previous !== undefined && segment.index !== previous + 1) lines.push("#EXT-X-DISCONTINUITY")
    lines.push(`#EXTINF:${(segment.duration_ms / 1000).toFixed(3)},`, uri(segment))
    previous = segment.index
  }
  if (ended) lines.push("#EXT-X-ENDLIST")
  return `${lines.join("\n")}\n`
}

const notFound = (what: string) => {
  const error = captureError("not_found", `no ${what}`)
  return HttpServerResponse.jsonUnsafe(failureOf(error), { status: httpStatusOf(error.error_code) })
}

export const liveRoutes = (services: GatewayServicesShape, media: MediaStore, signer: UrlSigner) =>
  HttpRouter.add(
    "GET",
    "/live/:session_id/:channel_id/:file",
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const params = yield* HttpRouter.params
      const url = new URL(request.url, "http://localhost")
      const sessionId = params.session_id ?? ""
      // The router has decoded it already; decoding again would turn %25 into % (or throw on it).
      const channelId = params.channel_id ?? ""
      const file = params.file ?? ""
      const base = livePath(sessionId, channelId)
      // The playlist's signature covers the channel: its segment URLs are signed for the same base.
      if (!signer.verify(`${base}/index.m3u8`, url.searchParams.get("exp"), url.searchParams.get("sig"))) {
        const error = captureError("unauthorized", "missing, wrong or expired signature", { field: "sig" })
        return HttpServerResponse.jsonUnsafe(failureOf(error), { status: 401 })
      }
      if (file === "index.m3u8") {
        const records = yield* Effect.promise(() => media.list(sessionId))
        const segments = records.filter((r) => r.channel_id === channelId)
        const loaded = yield* Effect.promise(() => services.runtime.host.load(sessionId))
        const recording = ["starting", "active", "stopping"].includes(loaded.state.value)
        const ended = !recording || segments.some((s) => s.final)
        const query = url.search
        const body = hlsPlaylist(segments, (s) => `${s.index}.ts${query}`, ended)
        return HttpServerResponse.text(body, { contentType: "application/vnd.apple.mpegurl" }).pipe(
          HttpServerResponse.setHeader("cache-control", "no-cache"),
        )
      }
      if (file === "player") {
        const title = `${sessionId} ${channelId} (live)`
        return HttpServerResponse.html(
          playerPage(title, { hls: `index.m3u8${url.search}` }, services.config.publicUrl),
        ).pipe(HttpServerResponse.setHeader("cache-control", "no-cache"))
      }
      const match = /^(\d{1,8})\.ts$/.exec(file)
      if (match === null) return notFound("such file")
      const data = yield* Effect.promise(() => media.read(sessionId, channelId, Number(match[1])))
      if (data === undefined) return notFound("such segment")
      return HttpServerResponse.uint8Array(data, { contentType: SEGMENT_CONTENT_TYPE }).pipe(
        HttpServerResponse.setHeader("cache-control", "max-age=86400, immutable"),
      )
    }),
  )
