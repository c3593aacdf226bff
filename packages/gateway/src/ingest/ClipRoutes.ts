/**
 * Clips: a recorded time range of one channel (an rtstream's `generateStream`), at signed URLs
 * (`?exp&sig`, the signature covering the session, the channel and the range) a browser or a
 * player fetches without headers:
 *
 *   /clip/{session_id}/{channel_id}/{from_ms}-{to_ms}/index.m3u8   HLS of the segments overlapping it
 *   /clip/{…}/{n}.ts                                               one of those segments
 *   /clip/{…}/clip.mp4                                             the same segments as one MP4
 *   /clip/{…}/player                                               a player page
 *
 * Cut from the stored segments at their borders (no re-encoding), so a clip starts at most one
 * segment before `from` and ends at most one after `to`. While the channel still records and `to`
 * lies ahead, the playlist grows and ends (`#EXT-X-ENDLIST`) once a segment reaches `to`.
 */
import { spawn } from "node:child_process"
import { once } from "node:events"
import { resolveFfmpeg } from "@capture/binaries"
import type { MediaStore } from "@capture/media"
import {
  type CaptureError,
  type ChannelId,
  captureError,
  channelKind,
  failureOf,
  httpStatusOf,
  type MediaSegment,
  SEGMENT_CONTENT_TYPE,
  typeOfKind,
} from "@capture/protocol"
import { Effect, Result, Stream } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import type { UrlSigner } from "../access/SignedUrls.js"
import { playerPage } from "../exports/PlayerPage.js"
import type { GatewayServicesShape } from "../GatewayContext.js"
import { hlsPlaylist } from "./LiveRoutes.js"

/** A time range of one channel, in wall-clock epoch ms (the segments' clock), `from` inclusive. */
export interface Clip {
  readonly sessionId: string
  readonly channelId: string
  readonly fromMs: number
  readonly toMs: number
}

/** The signed part of every clip URL. */
const clipBase = ({ sessionId, channelId, fromMs, toMs }: Clip) =>
  `/clip/${sessionId}/${encodeURIComponent(channelId)}/${fromMs}-${toMs}`

/** A clip's signed URLs: its HLS playlist, its MP4 and its player page. */
export const clipUrls = (publicUrl: string, signer: UrlSigner, clip: Clip) => {
  const base = clipBase(clip)
  const query = signer.query(base)
  return {
    hls: `${publicUrl}${base}/index.m3u8?${query}`,
    mp4: `${publicUrl}${base}/clip.mp4?${query}`,
    player: `${publicUrl}${base}/player?${query}`,
  }
}

/** Whether a segment holds any of [from, to). */
export const overlaps = (segment: MediaSegment, fromMs: number, toMs: number): boolean =>
  segment.start_ms < toMs && segment.start_ms + segment.duration_ms > fromMs

/** How many clips one gateway process remuxes to MP4 at once; more are answered 429. */
export const MAX_CONCURRENT_REMUXES = 4

/**
 * The MP4 of a clip: ffmpeg stream-copies its MPEG-TS segments, fed in order, into a fragmented MP4
 * written as it goes (nothing is buffered whole or written to disk), timestamps from zero. The
 * process is killed when the reader stops early (a client that went away).
 */
async function* remuxToMp4(
  ffmpeg: string,
  segments: ReadonlyArray<MediaSegment>,
  read: (segment: MediaSegment) => Promise<Uint8Array | undefined>,
): AsyncGenerator<Uint8Array> {
  const child = spawn(
    ffmpeg,
    [
      ...["-hide_banner", "-loglevel", "error", "-f", "mpegts", "-i", "pipe:0"],
      ...["-map", "0:v?", "-map", "0:a?", "-c", "copy", "-bsf:a", "aac_adtstoasc"],
      ...["-avoid_negative_ts", "make_zero"],
      ...["-movflags", "frag_keyframe+empty_moov+default_base_moof", "-f", "mp4", "pipe:1"],
    ],
    { stdio: ["pipe", "pipe", "pipe"] },
  )
  const exited = once(child, "close") as Promise<[number | null, NodeJS.Signals | null]>
  let stderr = ""
  child.stderr.on("data", (chunk: Buffer) => {
    if (stderr.length < 2048) stderr += chunk.toString()
  })
  // ffmpeg may exit before reading everything (killed, or refusing the input): not our crash.
  child.stdin.on("error", () => undefined)
  const feeding = (async () => {
    for (const segment of segments) {
      const bytes = await read(segment)
      if (bytes === undefined || child.stdin.destroyed) continue
      if (!child.stdin.write(bytes)) await once(child.stdin, "drain")
    }
    child.stdin.end()
  })().catch(() => child.kill("SIGKILL"))
  try {
    for await (const chunk of child.stdout) yield new Uint8Array(chunk as Buffer)
    const [code] = await exited
    if (code !== 0) throw new Error(`ffmpeg could not remux the clip (exit ${code}): ${stderr.trim()}`)
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    await feeding
  }
}

const refusal = (error: CaptureError) =>
  HttpServerResponse.jsonUnsafe(failureOf(error), { status: httpStatusOf(error.error_code) })

const notFound = (what: string) => refusal(captureError("not_found", `no ${what}`))

export const clipRoutes = (
  services: GatewayServicesShape,
  media: MediaStore,
  signer: UrlSigner,
  log: (message: string) => void,
) => {
  let remuxing = 0
  let ffmpeg: string | undefined
  return HttpRouter.add(
    "GET",
    "/clip/:session_id/:channel_id/:range/:file",
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const params = yield* HttpRouter.params
      const url = new URL(request.url, "http://localhost")
      const range = /^(\d{1,15})-(\d{1,15})$/.exec(params.range ?? "")
      // The router has decoded the channel id already; decoding again would turn %25 into %.
      const clip: Clip = {
        sessionId: params.session_id ?? "",
        channelId: params.channel_id ?? "",
        fromMs: Number(range?.[1] ?? Number.NaN),
        toMs: Number(range?.[2] ?? Number.NaN),
      }
      // One signature covers the clip: every file of it is signed by the same base.
      if (
        range === null ||
        !signer.verify(clipBase(clip), url.searchParams.get("exp"), url.searchParams.get("sig"))
      ) {
        return refusal(captureError("unauthorized", "missing, wrong or expired signature", { field: "sig" }))
      }
      const file = params.file ?? ""
      const inClip = (records: ReadonlyArray<MediaSegment>) =>
        records.filter((r) => r.channel_id === clip.channelId && overlaps(r, clip.fromMs, clip.toMs))

      if (file === "index.m3u8") {
        const records = (yield* Effect.promise(() => media.list(clip.sessionId))).filter(
          (r) => r.channel_id === clip.channelId,
        )
        const loaded = yield* Effect.promise(() => services.runtime.host.load(clip.sessionId))
        const recording = ["starting", "active", "stopping"].includes(loaded.state.value)
        const ended = !recording || records.some((r) => r.final || r.start_ms + r.duration_ms >= clip.toMs)
        const body = hlsPlaylist(inClip(records), (s) => `${s.index}.ts${url.search}`, ended)
        return HttpServerResponse.text(body, { contentType: "application/vnd.apple.mpegurl" }).pipe(
          HttpServerResponse.setHeader("cache-control", ended ? "max-age=60" : "no-cache"),
        )
      }
      if (file === "player") {
        // The files beside it, with the same signature.
        const sources = { hls: `index.m3u8${url.search}`, files: [`clip.mp4${url.search}`] }
        return HttpServerResponse.html(
          playerPage(`${clip.sessionId} ${clip.channelId}`, sources, services.config.publicUrl),
        )
      }
      if (file === "clip.mp4") {
        if (remuxing >= MAX_CONCURRENT_REMUXES) {
          return refusal(
            captureError("rate_limited", "too many clips are being made right now; retry shortly"),
          )
        }
        if (ffmpeg === undefined) {
          const found = yield* Effect.try(() => resolveFfmpeg()).pipe(Effect.result)
          if (Result.isFailure(found)) {
            return refusal(captureError("unavailable", `MP4 clips need ffmpeg: ${String(found.failure)}`))
          }
          ffmpeg = found.success
        }
        const segments = inClip(yield* Effect.promise(() => media.list(clip.sessionId)))
        if (segments.length === 0) return notFound("media in this clip")
        const tool = ffmpeg
        // Counted while it runs: a response never streamed never starts ffmpeg.
        const body = (async function* () {
          remuxing++
          try {
            yield* remuxToMp4(tool, segments, (s) => media.read(clip.sessionId, s.channel_id, s.index))
          } catch (error) {
            // The answer has begun: it can only be cut short. Say why where an operator looks.
            log(`clip ${clipBase(clip)}: ${error instanceof Error ? error.message : String(error)}`)
            throw error
          } finally {
            remuxing--
          }
        })()
        const video = typeOfKind(channelKind(clip.channelId as ChannelId)) === "video"
        return HttpServerResponse.stream(
          Stream.fromAsyncIterable(body, (error) => error),
          { contentType: video ? "video/mp4" : "audio/mp4" },
        ).pipe(HttpServerResponse.setHeader("cache-control", "no-cache"))
      }
      const segment = /^(\d{1,8})\.ts$/.exec(file)
      if (segment === null) return notFound("such file")
      const index = Number(segment[1])
      // Only the clip's own segments: a clip URL handed on does not open the rest of the channel.
      const record = yield* Effect.promise(() => media.record(clip.sessionId, clip.channelId, index))
      if (record === undefined || !overlaps(record, clip.fromMs, clip.toMs)) return notFound("such segment")
      const data = yield* Effect.promise(() => media.read(clip.sessionId, clip.channelId, index))
      if (data === undefined) return notFound("such segment")
      return HttpServerResponse.uint8Array(data, { contentType: SEGMENT_CONTENT_TYPE }).pipe(
        HttpServerResponse.setHeader("cache-control", "max-age=86400, immutable"),
      )
    }),
  )
}
