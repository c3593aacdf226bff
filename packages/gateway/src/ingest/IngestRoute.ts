/**
 * Media ingest: `PUT /capture/session/{id}/channels/{channel_id}/segments/{index}` with the raw
 * MPEG-TS bytes and `x-segment-start-ms`, `x-segment-duration-ms`, `x-segment-sha256`
 * (`x-segment-final: 1` on a channel's last segment), named once in the protocol
 * (`SEGMENT_ROUTE`, `SegmentHeaders`, answered with a `SegmentAck`). Headers, session and quotas
 * are checked before the body is read; the body streams to the store, checked as it comes (size,
 * MPEG-TS, checksum), and a body that fails stores nothing. Storing is idempotent by (session,
 * channel, index), so a recorder retries freely.
 * The first segment of a starting session is reported at once (`mediaReceived`), so the
 * session is active when the upload is answered; everything else a segment implies (the last
 * final one finishes a stop, silence stops a session) is the session reactor's, from the media
 * record stream, which also repeats the report should this process die before sending it.
 */

import type { IncomingMessage } from "node:http"
import type { MediaStore } from "@capture/media"
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
import type { SessionState } from "@capture/session-actor"
import { Effect, Result } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { noteAccount } from "../access/RequestNotes.js"
import { authorizeSession } from "../access/SessionAccess.js"
import type { GatewayServicesShape } from "../GatewayContext.js"
import { MAX_SEGMENT_DURATION_MS, refuse, storage, storeSegment } from "./StoreSegment.js"

const refused = (error: CaptureError) =>
  HttpServerResponse.jsonUnsafe(failureOf(error), {
    status: httpStatusOf(error.error_code),
    ...(error.error_code === "rate_limited" ? { headers: { "retry-after": "1" } } : {}),
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

const RECORDING = new Set(["starting", "active", "stopping"])

/**
 * How old the session's state may be when it takes a segment: the same as a request that came
 * that much earlier, well within the late-media margin that covers requests in flight. A
 * session's channels upload together, so most segments cost no lookup of the session. A state
 * that would refuse the segment is judged again on the current one.
 */
export const SESSION_STATE_MAX_AGE_MS = 1_000

/**
 * A segment for a session no longer recording: taken while an automatic stop's late-media window
 * is open (until `lateMediaMarginMs` before `late_media_until`; an export request clears it) if
 * its media starts before the stop instant and its channel is stored. Refused otherwise:
 * `recorded_after_stop` for media after the stop (so a recorder knows that channel is done),
 * `invalid_transition` once the window is closed.
 */
const lateMedia = (
  state: SessionState,
  channelId: string,
  startMs: number,
  now: number,
  marginMs: number,
): "taken" | CaptureError => {
  const { late_media_until, media_before, channels } = state.context
  const until = Date.parse(late_media_until ?? "")
  const stoppedAt = Date.parse(media_before ?? "")
  // Intake ends a request's length before the export reads (at most half the window).
  const intakeEnds = until - Math.min(marginMs, (until - stoppedAt) / 2)
  const open =
    state.value === "stopped" &&
    media_before !== null &&
    now < intakeEnds &&
    channels.some((c) => c.channel_id === channelId && c.store)
  if (!open || media_before === null) {
    return captureError("invalid_transition", `cannot upload media to a session that is ${state.value}`, {
      current_status: state.value as Exclude<typeof state.value, "none">,
    })
  }
  if (startMs >= Date.parse(media_before)) {
    return captureError(
      "recorded_after_stop",
      `the session stopped at ${media_before}; it takes only media recorded before then`,
      { field: SegmentHeaders.startMs, current_status: "stopped" },
    )
  }
  return "taken"
}

/** Why the session in `state` does not take a segment of `channelId` starting at `startMs`, if it does not. */
const refusalFor = (
  state: SessionState,
  channelId: string,
  startMs: number,
  marginMs: number,
): CaptureError | undefined => {
  if (!state.context.channels.some((c) => c.channel_id === channelId)) {
    return captureError("channel_not_found", `${channelId} is not a channel this session started`, {
      field: "channel_id",
    })
  }
  if (RECORDING.has(state.value)) return undefined
  const late = lateMedia(state, channelId, startMs, Date.now(), marginMs)
  return late === "taken" ? undefined : late
}

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
      yield* noteAccount(principal.success.account_id)

      const sessionId = params.session_id ?? ""
      // The router has decoded it already; decoding again would turn %25 into % (or throw on it).
      const channelId = params.channel_id ?? ""
      const indexText = params.index ?? ""
      const maxIndex = services.config.maxSegmentIndex
      if (!/^\d{1,16}$/.test(indexText) || Number(indexText) > maxIndex) {
        return yield* refuse(
          captureError("invalid_field", `index: expected an integer from 0 to ${maxIndex}`, {
            field: "index",
          }),
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
        max: MAX_SEGMENT_DURATION_MS,
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

      const load = (freshness: "current" | { readonly maxAgeMs: number }) =>
        storage("loading the session", () =>
          authorizeSession(services.runtime.host, principal.success, sessionId, freshness),
        )
      const marginMs = services.config.lateMediaMarginMs
      const recent = yield* load({
        maxAgeMs: services.config.sessionStateMaxAgeMs ?? SESSION_STATE_MAX_AGE_MS,
      })
      if (Result.isFailure(recent)) return yield* refuse(recent.failure)
      let state = recent.success.state
      if (refusalFor(state, channelId, startMs, marginMs) !== undefined) {
        const current = yield* load("current")
        if (Result.isFailure(current)) return yield* refuse(current.failure)
        state = current.success.state
        const refusal = refusalFor(state, channelId, startMs, marginMs)
        if (refusal !== undefined) return yield* refuse(refusal)
      }

      const credential = principal.success
      const release = services.uploadSlots.take(
        credential.kind === "api_key" ? credential.key_id : credential.token_id,
      )
      if (release === undefined) {
        return yield* refuse(
          captureError(
            "rate_limited",
            `at most ${services.config.maxUploadsPerCredential} uploads of one credential at once`,
            { field: SegmentHeaders.token },
          ),
        )
      }
      const stored = yield* storeSegment(services, media, {
        accountId: credential.account_id,
        sessionId,
        channelId,
        status: state.value,
        index,
        startMs,
        durationMs,
        sha256,
        final,
        length: Number.isFinite(length) ? length : undefined,
        body: request.source as IncomingMessage,
      }).pipe(Effect.ensuring(Effect.sync(release)))
      const ack: SegmentAck = {
        session_id: sessionId as SessionId,
        channel_id: channelId as ChannelId,
        index,
        duplicate: stored.duplicate,
      }
      return HttpServerResponse.jsonUnsafe(successOf(ack))
    }).pipe(Effect.catch((error) => Effect.succeed(refused(error.error)))),
  )
