/**
 * Segment ingest, the recorder's upload of one MPEG-TS segment:
 * `PUT /capture/session/{session_id}/channels/{channel_id}/segments/{index}`, body the segment's
 * bytes (`content-type: video/mp2t`), its timing and checksum in headers, answered with a
 * `SegmentAck`. The recorder sends it and the gateway reads it, both from these names.
 */
import { Schema } from "effect"
import { ChannelId } from "./Channel.js"
import { pathOf } from "./HttpRoute.js"
import { SessionId } from "./Ids.js"

/** The route of a segment upload, as the gateway matches it. */
export const SEGMENT_ROUTE = "/capture/session/:session_id/channels/:channel_id/segments/:index"

/** The path a recorder uploads segment `index` of a channel to (`mic:default` → `mic%3Adefault`). */
export const segmentPath = (sessionId: string, channelId: string, index: number): string =>
  pathOf(SEGMENT_ROUTE, { session_id: sessionId, channel_id: channelId, index })

/** The headers of a segment upload (lower case, as Node reports them). */
export const SegmentHeaders = {
  /** The credential: a client token (`st-…`) or an API key. */
  token: "x-access-token",
  /** Wall-clock epoch milliseconds of the segment's first sample. */
  startMs: "x-segment-start-ms",
  durationMs: "x-segment-duration-ms",
  /** Hex SHA-256 of the body. */
  sha256: "x-segment-sha256",
  /** `1` on a channel's last segment. */
  final: "x-segment-final",
} as const

/** The content type of a segment: an MPEG transport stream (the only one accepted). */
export const SEGMENT_CONTENT_TYPE = "video/mp2t"

/** What a recorder sends in `x-segment-final` on a channel's last segment. */
export const SEGMENT_FINAL = "1"

/** Whether an `x-segment-final` value marks the last segment (`1`; `true` is accepted too). */
export const isFinalSegment = (value: string | undefined): boolean =>
  value === SEGMENT_FINAL || value === "true"

/** The server's acknowledgement of a stored segment (`data` of the success envelope). */
export const SegmentAck = Schema.Struct({
  session_id: SessionId,
  channel_id: ChannelId,
  index: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  /** True when the server already had this segment with the same checksum. */
  duplicate: Schema.Boolean,
})
export type SegmentAck = typeof SegmentAck.Type
