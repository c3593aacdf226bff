/**
 * Media segments: the record of one stored piece of a channel's recording (MPEG-TS, ~2 s,
 * keyframe-aligned), published once its bytes are in the media Object Store.
 */
import { Schema } from "effect"
import { ChannelId } from "./Channel.js"
import { SessionId } from "./Ids.js"

const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/** One stored segment of a channel. */
export const MediaSegment = Schema.Struct({
  session_id: SessionId,
  channel_id: ChannelId,
  /** 0, 1, 2, … per channel. */
  index: NonNegativeInt,
  /** Wall-clock epoch milliseconds of the segment's first sample. */
  start_ms: Schema.Int,
  duration_ms: NonNegativeInt,
  bytes: NonNegativeInt,
  /** Hex SHA-256 of the bytes. */
  sha256: Schema.String,
  /** The channel's last segment. */
  final: Schema.Boolean,
  container: Schema.Literal("mpegts"),
  /** ISO time the bytes were stored. */
  stored_at: Schema.String,
})
export type MediaSegment = typeof MediaSegment.Type
