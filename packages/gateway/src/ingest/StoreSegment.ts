/**
 * Stores one segment of a recording session: the one path every ingest takes (the recorder's
 * `PUT …/segments/{i}` and a pushed RTMP publish), so quotas, the MPEG-TS and size checks, the
 * idempotent store and the first-media report are the same whoever sends the media. The session
 * must be recording and the segment's channel one of its own (the caller checked both).
 */
import { currentSpanParent } from "@capture/jetstream"
import { type MediaStore, SegmentChecksumMismatch, SegmentConflict } from "@capture/media"
import {
  type CaptureError,
  type ChannelId,
  captureError,
  SegmentHeaders,
  type SessionId,
  type SessionStatus,
} from "@capture/protocol"
import { mediaReceived } from "@capture/session-actor"
import { Effect, Result } from "effect"
import type { GatewayServicesShape } from "../GatewayContext.js"
import { checkedSegmentBody, SegmentBodyRefused } from "./SegmentBody.js"

/** The longest segment any ingest takes (ms). */
export const MAX_SEGMENT_DURATION_MS = 60_000

/** Why a segment (or the request carrying it) was refused. */
export class Refused {
  constructor(readonly error: CaptureError) {}
}
export const refuse = (error: CaptureError): Effect.Effect<never, Refused> => Effect.fail(new Refused(error))

/** Why a storage call failed, as the client is told: its own doing by name, else ours (503). */
const refusalOf = (label: string, error: unknown): CaptureError => {
  if (error instanceof SegmentBodyRefused) return error.error
  if (error instanceof SegmentConflict) {
    return captureError("segment_conflict", "this segment index was stored with other bytes", {
      field: "index",
    })
  }
  if (error instanceof SegmentChecksumMismatch) {
    return captureError("checksum_mismatch", `the body does not match ${SegmentHeaders.sha256}`, {
      field: SegmentHeaders.sha256,
    })
  }
  return captureError("unavailable", `${label}: ${error instanceof Error ? error.message : String(error)}`)
}

export const storage = <A>(label: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (error) => new Refused(refusalOf(label, error)) })

export interface SegmentToStore {
  readonly accountId: string
  readonly sessionId: string
  readonly channelId: string
  /** The session's status when the segment came: a `starting` one is reported active at once. */
  readonly status: SessionStatus | "none"
  readonly index: number
  readonly startMs: number
  readonly durationMs: number
  readonly sha256: string
  readonly final: boolean
  /** The announced length, if any (checked against the quota before the body is read). */
  readonly length: number | undefined
  readonly body: AsyncIterable<Uint8Array>
}

/** Stores `segment` against the quotas; `duplicate` when that index was stored with these bytes before. */
export const storeSegment = (
  services: GatewayServicesShape,
  media: MediaStore,
  segment: SegmentToStore,
): Effect.Effect<{ readonly duplicate: boolean }, Refused> =>
  Effect.gen(function* () {
    const { accountId, sessionId, channelId, index } = segment
    // The segment's record, and the report below, continue the caller's trace (tracing on).
    const parent = yield* currentSpanParent
    const overQuota = yield* storage("reading the storage quota", () =>
      services.quota.admit(accountId, sessionId, segment.length ?? 0),
    )
    // A retry of a segment stored before the quota filled up still gets its acknowledgement.
    if (
      overQuota !== undefined &&
      !(yield* storage("looking for the segment", () => media.has(sessionId, channelId, index)))
    ) {
      return yield* refuse(overQuota)
    }
    const stored = yield* storage("storing the segment", () =>
      media.putStream(
        {
          session_id: sessionId as SessionId,
          channel_id: channelId as ChannelId,
          index,
          start_ms: segment.startMs,
          duration_ms: segment.durationMs,
          sha256: segment.sha256,
          final: segment.final,
          container: "mpegts",
        },
        checkedSegmentBody(segment.body, services.config.maxSegmentBytes),
        parent,
      ),
    )
    if (!stored.duplicate) services.quota.record(accountId, sessionId, stored.record.bytes)
    if (segment.status === "starting") {
      const reported = yield* storage("reporting the media", () =>
        services.runtime.host.execute(mediaReceived(sessionId as SessionId, channelId as ChannelId), parent),
      )
      if (Result.isFailure(reported) && reported.failure.error_code !== "invalid_transition") {
        return yield* refuse(reported.failure)
      }
    }
    return { duplicate: stored.duplicate }
  })
