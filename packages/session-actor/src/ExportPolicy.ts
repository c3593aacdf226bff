/**
 * What a session exports by itself, and what its exports leave out: the rules the machine's fold,
 * the deciding and the session reactor share.
 */
import type { Channel, ChannelId, TimeSpan } from "@capture/protocol"

/**
 * The video channel of a session's main export: the primary display if stored, else the first
 * stored display, else null (audio only).
 */
export const mainExportChannel = (
  channels: ReadonlyArray<Channel>,
  primary: ChannelId | null,
): ChannelId | null => {
  const stored = channels.filter((c) => c.store && c.type === "video")
  return stored.find((c) => c.channel_id === primary)?.channel_id ?? stored[0]?.channel_id ?? null
}

/**
 * The video channel of the export a session makes by itself when it stops (its main export), or
 * undefined when it makes none: an aborted stop (nothing was captured) or no channel with
 * `store: true`. The fold shows it `exporting` from the stop; the session reactor asks for it.
 */
export const automaticExport = (
  channels: ReadonlyArray<Channel>,
  primary: ChannelId | null,
  stopReason: string,
): ChannelId | null | undefined =>
  stopReason === "aborted" || !channels.some((c) => c.store)
    ? undefined
    : mainExportChannel(channels, primary)

/** One pause of one channel, on the recorder's clock; `to_ms` null while still paused. */
export interface ChannelPause {
  readonly channel_id: ChannelId
  readonly from_ms: number
  readonly to_ms: number | null
}

/**
 * The spans when every stored channel was paused (as OBS pauses a whole recording): the export
 * leaves them out of the muxed video. A span still open when the session stopped ends at null.
 * A channel paused alone keeps its place in the timeline (black or silent).
 */
export const pausedSpans = (
  channels: ReadonlyArray<Channel>,
  pauses: ReadonlyArray<ChannelPause>,
): ReadonlyArray<TimeSpan> => {
  const stored = channels.filter((c) => c.store).map((c) => c.channel_id)
  if (stored.length === 0) return []
  const end = (p: ChannelPause) => p.to_ms ?? Number.POSITIVE_INFINITY
  const pausedAt = (channel: ChannelId, at: number) =>
    pauses.some((p) => p.channel_id === channel && p.from_ms <= at && at < end(p))
  const points = [...new Set(pauses.flatMap((p) => [p.from_ms, end(p)]))].sort((a, b) => a - b)
  const spans: Array<{ start_ms: number; end_ms: number | null }> = []
  for (const [i, from] of points.entries()) {
    const to = points[i + 1]
    if (to === undefined || !Number.isFinite(from)) break
    if (!stored.every((channel) => pausedAt(channel, from))) continue
    const last = spans[spans.length - 1]
    const spanEnd = Number.isFinite(to) ? to : null
    if (last !== undefined && last.end_ms === from) last.end_ms = spanEnd
    else spans.push({ start_ms: from, end_ms: spanEnd })
  }
  return spans
}
