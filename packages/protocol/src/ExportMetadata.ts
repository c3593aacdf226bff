/**
 * Export metadata: what an export produced, served as `/media/{video_id}/export.json` and inside
 * `GET /collection/{cid}/video/{video_id}`. Times are wall-clock epoch ms (and ISO); gaps are holes
 * in a channel (missing or unreadable segments) that the export filled with silence or black.
 * Time when every stored channel was paused is left out of the muxed video (`paused_spans`); the
 * raw assets keep each channel's own timeline.
 */
import { Schema } from "effect"
import { ChannelId, ChannelType } from "./Channel.js"
import { AssetId, SessionId, VideoId } from "./Ids.js"
import { TimeSpan } from "./TimeSpan.js"

const Int = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/** A hole in a channel, filled with silence (audio) or black (video). */
export const ExportGap = Schema.Struct({
  channel_id: ChannelId,
  start_ms: Schema.Int,
  duration_ms: Int,
  /** `missing`: no segment arrived; `corrupt`: a segment arrived but could not be read. */
  reason: Schema.Literals(["missing", "corrupt"]),
  segment_indexes: Schema.Array(Int),
})
export type ExportGap = typeof ExportGap.Type

/** The raw asset of one stored channel: its media stream-copied, with its own start time. */
export const ExportAsset = Schema.Struct({
  /** `m-…` (video) or `a-…` (audio), derived from the export's video id and the channel (`rawAssetId`). */
  asset_id: AssetId,
  channel_id: ChannelId,
  type: ChannelType,
  /** Path under `/media/{video_id}/`, e.g. `raw/display_1.mp4`, `raw/mic_default.m4a`. */
  file: Schema.String,
  content_type: Schema.String,
  bytes: Int,
  start_ms: Schema.Int,
  start_time: Schema.String,
  duration_ms: Int,
  /** Usable segments. */
  segments: Int,
  gaps: Schema.Array(ExportGap),
})
export type ExportAsset = typeof ExportAsset.Type

/** One export of a session: the muxed video (HLS + MP4) and the raw assets. */
export const ExportMetadata = Schema.Struct({
  video_id: VideoId,
  session_id: SessionId,
  /** The display whose video is muxed; null for an audio-only export. */
  video_channel_id: Schema.NullOr(ChannelId),
  created_at: Schema.String,
  /** Wall-clock start of the muxed timeline. */
  start_ms: Schema.Int,
  start_time: Schema.String,
  duration_ms: Int,
  /** HLS playlist, relative to `/media/{video_id}/`. */
  stream: Schema.String,
  /** Single-file MP4, relative to `/media/{video_id}/`. */
  download: Schema.String,
  bytes: Int,
  /** The stored audio channels mixed into the video. */
  audio_channel_ids: Schema.Array(ChannelId),
  channels: Schema.Array(ExportAsset),
  /** Every gap of every channel. */
  gaps: Schema.Array(ExportGap),
  /**
   * When every stored channel was paused (the recorder's clock): left out of the muxed video,
   * whose timeline closes over them. Absent from exports made before pauses were cut.
   */
  paused_spans: Schema.optionalKey(Schema.Array(TimeSpan)),
  /**
   * How much of the muxed timeline the pauses took out (ms). Video is cut at segment edges where
   * a pause falls on recorded frames, so this can differ a little from the spans' total.
   */
  paused_ms_removed: Schema.optionalKey(Int),
})
export type ExportMetadata = typeof ExportMetadata.Type

/** channel_id → asset id of the raw assets an export made (channels without usable media have none). */
export const ExportedAssetIds = Schema.Record(ChannelId, AssetId)
export type ExportedAssetIds = typeof ExportedAssetIds.Type

/** The asset ids of an export's raw assets, by channel. */
export const assetIdsOf = (metadata: Pick<ExportMetadata, "channels">): ExportedAssetIds =>
  Object.fromEntries(metadata.channels.map((asset) => [asset.channel_id, asset.asset_id]))

/**
 * Seconds of an export's muxed video at wall-clock `wallMs` (epoch ms on the recorder's clock):
 * after its `start_ms`, less the paused time it left out before then, within its length. (The
 * video is cut at segment edges where a pause covers recorded frames, so around such a cut this is
 * within a segment of the picture.)
 */
export const videoSecondsAt = (
  metadata: Pick<ExportMetadata, "start_ms" | "duration_ms" | "paused_spans">,
  wallMs: number,
): number => {
  const paused = (metadata.paused_spans ?? []).reduce(
    (sum, span) =>
      sum +
      Math.max(
        0,
        Math.min(wallMs, span.end_ms ?? Number.POSITIVE_INFINITY) -
          Math.max(span.start_ms, metadata.start_ms),
      ),
    0,
  )
  const ms = Math.min(metadata.duration_ms, Math.max(0, wallMs - metadata.start_ms - paused))
  return Math.round(ms) / 1000
}

/** Wall-clock end (epoch ms) of what an export shows: its length plus the paused time it left out. */
export const exportWallEndMs = (
  metadata: Pick<ExportMetadata, "start_ms" | "duration_ms" | "paused_ms_removed">,
): number => metadata.start_ms + metadata.duration_ms + (metadata.paused_ms_removed ?? 0)
