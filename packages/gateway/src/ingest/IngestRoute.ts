/**
 * Media ingest: `PUT /capture/session/{id}/channels/{channel_id}/segments/{index}` with the raw
 * MPEG-TS bytes and `x-segment-start-ms`, `x-segment-duration-ms`, `x-segment-sha256`
 * (`x-segment-final: 1` on a channel's last segment), named once in the protocol
 * (`SEGMENT_ROUTE`, `SegmentHeaders`, answered with a `SegmentAck`). Everything is checked before anything is
 * stored; storing is idempotent by (session, channel, index), so a recorder retries freely.
 * The first segment of a starting session is reported at once (`mediaReceived`), so the
 * session is active when the upload is answered; everything else a segment implies (the last
 * final one finishes a stop, silence stops a session) is the session reactor's, from the media
 * record stream, which also repeats the report should this process die before sending it.
 */

import { type MediaStore, SegmentChecksumMismatch, SegmentConflict } from "@capture/media"
import {
  type CaptureError,
  type ChannelId,
  captureError,
  failureOf,
  httpStatusOf,
  isFinalSegment,
  SEGMENT_CONTENT_TYPE,
  SEGMENT_ROUTE,
  type SegmentAck,
  SegmentHeaders,
  type SessionId,
  successOf,
} from "@capture/protocol"
import { mediaReceived } from "@capture/session-actor"
import { ByteSize, Effect, Result } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { authorizeSession } from "../access/SessionAccess.js"
import type { GatewayServicesShape } from "../GatewayContext.js"

const TS_PACKET = 188
const MAX_INDEX = 10_000_000
const MAX_DURATION_MS = 60_000

const refused = (error: CaptureError) =>
  HttpServerResponse.jsonUnsafe(failureOf(error), { status: httpStatusOf(error.error_code) })

class Refused {
  constructor(readonly error: CaptureError) {}
}
const refuse = (error: CaptureError): Effect.Effect<never, Refused> => Effect.fail(new Refused(error))

const storage = <A>(label: string, f: () => Promise<A>) =>
  Effect.tryPromise({
    try: f,
    catch: (error) =>
      error instanceof SegmentConflict
        ? new Refused(
            captureError("segment_conflict", "this segment index was stored with other bytes", {
              field: "index",
            }),
          )
        : error instanceof SegmentChecksumMismatch
          ? new Refused(
              captureError("checksum_mismatch", `the body does not match ${SegmentHeaders.sha256}`, {
                field: SegmentHeaders.sha256,
              }),
            )
          : new Refused(
              captureError(
                "unavailable",
                `${label}: ${error instanceof Error ? error.message : String(error)}`,
              ),
            ),
  })

const integerHeader = (
  headers: Readonly<Record<string, string | undefined>>,
  name: string,
  range: { readonly min: number; readonly max: number },
) => {
  const raw = headers[name]
  if (raw === undefined || raw === "") {
    return refuse(captureError("missing_field", `the ${name} header is required`, { field: name }))
  }
  const value = Number(raw)
  if (!/^-?\d{1,16}$/.test(raw) || value < range.min || value > range.max) {
    return refuse(
      captureError("invalid_field", `${name}: expected an integer from ${range.min} to ${range.max}`, {
        field: name,
      }),
    )
  }
  return Effect.succeed(value)
}

/** MPEG-TS: whole 188-byte packets, each starting with the 0x47 sync byte. */
export const looksLikeMpegTs = (data: Uint8Array): boolean => {
  if (data.length === 0 || data.length % TS_PACKET !== 0) return false
  for (let offset = 0; offset < data.length; offset += TS_PACKET) {
    if (data[offset] !== 0x47) return false
  }
  return true
}

const RECORDING = new Set(["starting", "active", "stopping"])

export const ingestRoute = (services: GatewayServicesShape, media: MediaStore, maxSegmentBytes: number) =>
  HttpRouter.add(
    "PUT",
    SEGMENT_ROUTE,
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const params = yield* HttpRouter.params
      const headers = request.headers
      const principal = yield* storage("checking the token", () =>
        services.accounts.authenticate(headers[SegmentHeaders.token]),
      )
      if (Result.isFailure(principal)) return yield* refuse(principal.failure)

      const sessionId = params.session_id ?? ""
      // The router has decoded it already; decoding again would turn %25 into % (or throw on it).
      const channelId = params.channel_id ?? ""
      const indexText = params.index ?? ""
      if (!/^\d{1,8}$/.test(indexText) || Number(indexText) > MAX_INDEX) {
        return yield* refuse(
          captureError("invalid_field", "index: expected a non-negative integer", { field: "index" }),
        )
      }
      const index = Number(indexText)

      const contentType = (headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase()
      if (contentType !== SEGMENT_CONTENT_TYPE) {
        return yield* refuse(
          captureError("unsupported_media_type", `send segments as ${SEGMENT_CONTENT_TYPE}`, {
            field: "content-type",
          }),
        )
      }
      const length = Number(headers["content-length"] ?? Number.NaN)
      if (Number.isFinite(length) && length > maxSegmentBytes) {
        return yield* refuse(
          captureError("payload_too_large", `a segment may be at most ${maxSegmentBytes} bytes`, {
            field: "body",
          }),
        )
      }
      const startMs = yield* integerHeader(headers, SegmentHeaders.startMs, {
        min: 0,
        max: 8_640_000_000_000,
      })
      const durationMs = yield* integerHeader(headers, SegmentHeaders.durationMs, {
        min: 0,
        max: MAX_DURATION_MS,
      })
      const sha256 = headers[SegmentHeaders.sha256] ?? ""
      if (!/^[0-9a-fA-F]{64}$/.test(sha256)) {
        return yield* refuse(
          captureError(
            sha256 === "" ? "missing_field" : "invalid_field",
            `${SegmentHeaders.sha256}: expected 64 hex digits`,
            { field: SegmentHeaders.sha256 },
          ),
        )
      }
      const final = isFinalSegment(headers[SegmentHeaders.final])

      const authorized = yield* storage("loading the session", () =>
        authorizeSession(services.runtime.host, principal.success, sessionId),
      )
      if (Result.isFailure(authorized)) return yield* refuse(authorized.failure)
      const { state } = authorized.success
      if (!state.context.channels.some((c) => c.channel_id === channelId)) {
        return yield* refuse(
          captureError("channel_not_found", `${channelId} is not a channel this session started`, {
            field: "channel_id",
          }),
        )
      }
      if (!RECORDING.has(state.value)) {
        return yield* refuse(
          captureError("invalid_transition", `cannot upload media to a session that is ${state.value}`, {
            current_status: state.value as Exclude<typeof state.value, "none">,
          }),
        )
      }

      const body = yield* Effect.provideService(
        request.arrayBuffer,
        HttpServerRequest.MaxBodySize,
        ByteSize.bytes(maxSegmentBytes),
      ).pipe(
        Effect.mapError(
          () =>
            new Refused(
              captureError("payload_too_large", `a segment may be at most ${maxSegmentBytes} bytes`, {
                field: "body",
              }),
            ),
        ),
      )
      const data = new Uint8Array(body)
      if (!looksLikeMpegTs(data)) {
        return yield* refuse(
          captureError("unsupported_media", "the body is not an MPEG-TS segment", { field: "body" }),
        )
      }
      const stored = yield* storage("storing the segment", () =>
        media.put(
          {
            session_id: sessionId as SessionId,
            channel_id: channelId as ChannelId,
            index,
            start_ms: startMs,
            duration_ms: durationMs,
            sha256,
            final,
            container: "mpegts",
          },
          data,
        ),
      )
      if (state.value === "starting") {
        const reported = yield* storage("reporting the media", () =>
          services.runtime.host.execute(mediaReceived(sessionId as SessionId, channelId as ChannelId)),
        )
        if (Result.isFailure(reported) && reported.failure.error_code !== "invalid_transition") {
          return yield* refuse(reported.failure)
        }
      }
      const ack: SegmentAck = {
        session_id: sessionId as SessionId,
        channel_id: channelId as ChannelId,
        index,
        duplicate: stored.duplicate,
      }
      return HttpServerResponse.jsonUnsafe(successOf(ack))
    }).pipe(Effect.catch((error) => Effect.succeed(refused(error.error)))),
  )
