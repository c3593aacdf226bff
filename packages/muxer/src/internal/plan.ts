/**
 * Planning, pure: from a session's segment records and the pieces made so far, where each piece
 * goes on an export's timeline, which gaps need fillers, and which audio windows to mix from
 * which segments. The same functions serve the incremental work (only what is certain so far)
 * and the final assembly (everything, gaps filled).
 *
 * Times: segment records carry wall-clock epoch ms; an export's timeline starts at `e0` (the first
 * usable sample of its video channel, or of its audio when there is no video).
 */
import { createHash } from "node:crypto"
import type { MediaSegment } from "@capture/protocol"
import { AAC_FRAME, MIX_RATE, PRE_ROLL } from "./media.js"

/** What the piece index knows about one piece. */
export interface PieceInfo {
  readonly key: string
  /** Object name in the exports bucket. */
  readonly name: string
  readonly kind: "raw" | "mix" | "fill"
  readonly ok: boolean
  readonly error?: string
  readonly bytes: number
  readonly timescale: number
  readonly samples: number
  /** Sum of sample durations, in `timescale` units. */
  readonly duration: number
  /** Earliest presentation time relative to the first decode time, in `timescale` units. */
  readonly min_pts: number
  readonly moofs: number
  /** Raw pieces: object name of the init segment they decode with. */
  readonly init?: string
}

export const rawKey = (channelId: string, index: number, sha256: string): string =>
  `raw/${channelId}/${index}/${sha256}`

/** Two segments closer than this (ms) are continuous; a larger hole is a gap. */
export const GAP_MS = 100
/** Runs of audio segments are decoded as one input only when this close (ms). */
const RUN_MS = 20
/** An audio-only timeline is cut into windows of this many samples (2.048 s). */
export const AUDIO_WINDOW = 96 * AAC_FRAME
/**
 * A stored channel with no segment yet is assumed absent from windows this far (ms) behind the
 * others, once the session has been sending for that long: a channel that turns up later just
 * changes those windows' inputs, and the final assembly mixes them again.
 */
export const ABSENT_AFTER_MS = 10_000

/** A hole in a channel, reported in the export metadata. */
export interface Gap {
  readonly channel_id: string
  readonly start_ms: number
  readonly duration_ms: number
  readonly reason: "missing" | "corrupt"
  readonly segment_indexes: ReadonlyArray<number>
}

export type LayoutItem =
  | {
      readonly kind: "segment"
      readonly record: MediaSegment
      readonly piece: PieceInfo
      readonly startMs: number
      readonly durationMs: number
    }
  | { readonly kind: "gap"; readonly gap: Gap; readonly startMs: number; readonly durationMs: number }

/** A channel laid out in time: its usable segments and the gaps between them. */
export interface ChannelLayout {
  readonly channelId: string
  readonly items: ReadonlyArray<LayoutItem>
  readonly startMs: number
  readonly endMs: number
  /** The first usable segment's start: where the channel's own asset starts. */
  readonly firstUsableMs: number
  readonly usable: ReadonlyArray<Extract<LayoutItem, { kind: "segment" }>>
  readonly gaps: ReadonlyArray<Gap>
}

const pieceDurationMs = (piece: PieceInfo): number => (piece.duration * 1000) / piece.timescale

/**
 * Lays out one channel. `final`: every record is in, so unusable or missing ones become gaps.
 * Otherwise only the certain prefix is laid out: records 0, 1, … each present, made and usable,
 * with no gap between them.
 */
export const layoutChannel = (
  channelId: string,
  records: ReadonlyArray<MediaSegment>,
  pieces: ReadonlyMap<string, PieceInfo>,
  final: boolean,
): ChannelLayout | undefined => {
  const sorted = [...records].filter((r) => r.channel_id === channelId).sort((a, b) => a.index - b.index)
  const pieceOf = (r: MediaSegment) => pieces.get(rawKey(r.channel_id, r.index, r.sha256))
  type Seg = Extract<LayoutItem, { kind: "segment" }>
  const usable: Seg[] = []
  if (!final) {
    for (const [i, r] of sorted.entries()) {
      const piece = pieceOf(r)
      if (r.index !== i || piece === undefined || !piece.ok) break
      const prev = usable.at(-1)
      if (prev !== undefined && Math.abs(r.start_ms - (prev.startMs + prev.durationMs)) > GAP_MS) break
      usable.push({
        kind: "segment",
        record: r,
        piece,
        startMs: r.start_ms,
        durationMs: pieceDurationMs(piece),
      })
    }
    const first = usable[0]
    const last = usable.at(-1)
    if (first === undefined || last === undefined) return undefined
    return {
      channelId,
      items: usable,
      startMs: first.startMs,
      endMs: last.startMs + last.durationMs,
      firstUsableMs: first.startMs,
      usable,
      gaps: [],
    }
  }
  for (const r of sorted) {
    const piece = pieceOf(r)
    if (piece?.ok === true)
      usable.push({
        kind: "segment",
        record: r,
        piece,
        startMs: r.start_ms,
        durationMs: pieceDurationMs(piece),
      })
  }
  const first = usable[0]
  if (first === undefined) return undefined
  const bad = new Set(sorted.filter((r) => pieceOf(r)?.ok !== true).map((r) => r.index))
  const gapBetween = (
    fromMs: number,
    toMs: number,
    indexes: number[],
  ): Extract<LayoutItem, { kind: "gap" }> => {
    const gap: Gap = {
      channel_id: channelId,
      start_ms: Math.round(fromMs),
      duration_ms: Math.round(toMs - fromMs),
      reason: indexes.some((i) => bad.has(i)) ? "corrupt" : "missing",
      segment_indexes: indexes,
    }
    return { kind: "gap", gap, startMs: fromMs, durationMs: toMs - fromMs }
  }
  const range = (from: number, to: number) =>
    Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i)
  const items: LayoutItem[] = []
  // Unusable records before the first usable one still say when the channel started.
  const leading = sorted.filter((r) => r.index < first.record.index)
  const startMs = Math.min(first.startMs, ...leading.map((r) => r.start_ms))
  if (first.startMs - startMs > GAP_MS)
    items.push(gapBetween(startMs, first.startMs, range(0, first.record.index)))
  let prev: Seg | undefined
  for (const seg of usable) {
    if (prev !== undefined) {
      const prevEnd = prev.startMs + prev.durationMs
      if (seg.startMs - prevEnd > GAP_MS)
        items.push(gapBetween(prevEnd, seg.startMs, range(prev.record.index + 1, seg.record.index)))
    }
    items.push(seg)
    prev = seg
  }
  const last = usable.at(-1) as Seg
  let endMs = last.startMs + last.durationMs
  const trailing = sorted.filter((r) => r.index > last.record.index)
  const trailingEnd = Math.max(endMs, ...trailing.map((r) => r.start_ms + r.duration_ms))
  if (trailingEnd - endMs > GAP_MS) {
    items.push(
      gapBetween(
        endMs,
        trailingEnd,
        trailing.map((r) => r.index),
      ),
    )
    endMs = trailingEnd
  }
  return {
    channelId,
    items,
    startMs,
    endMs,
    firstUsableMs: first.startMs,
    usable,
    gaps: items.flatMap((i) => (i.kind === "gap" ? [i.gap] : [])),
  }
}

/** Nearest whole AAC frame, in samples at the mix rate, of a time in ms. */
export const snapToFrame = (ms: number): number => Math.round((ms * MIX_RATE) / 1000 / AAC_FRAME) * AAC_FRAME

/** One window of mixed audio: samples `[from, to)` of the export timeline (48 kHz). */
export interface AudioWindow {
  readonly from: number
  readonly to: number
}

/**
 * Audio windows that line up with the video items (one per item; empty ones have from = to).
 * `start`: where the first item's window starts (the previous window's end, when items are
 * appended to windows cut before).
 */
export const windowsForVideo = (items: ReadonlyArray<LayoutItem>, e0: number, start = 0): AudioWindow[] => {
  const windows: AudioWindow[] = []
  let from = start
  for (const item of items) {
    const to = Math.max(from, snapToFrame(item.startMs + item.durationMs - e0))
    windows.push({ from, to })
    from = to
  }
  return windows
}

/** Fixed windows for an audio-only timeline ending at `endMs`. */
export const windowsForAudio = (e0: number, endMs: number): AudioWindow[] => {
  const end = Math.max(AAC_FRAME, snapToFrame(endMs - e0))
  const windows: AudioWindow[] = []
  for (let from = 0; from < end; from += AUDIO_WINDOW)
    windows.push({ from, to: Math.min(end, from + AUDIO_WINDOW) })
  return windows
}

/** One channel's segments feeding a window: decoded back to back. */
export interface MixRun {
  readonly channelId: string
  /** Includes one segment before the window (decoder warm-up) when there is one. */
  readonly records: ReadonlyArray<MediaSegment>
  /** Where the run's first sample falls, in samples from the window's pre-roll start. */
  readonly offset: number
}

/** The mix of one window: what goes in, and a signature naming exactly that. */
export interface MixPlan {
  readonly window: AudioWindow
  readonly runs: ReadonlyArray<MixRun>
  readonly signature: string
}

/** Which segments of which audio channels feed `window` (timeline starting at `e0`). */
export const planMix = (window: AudioWindow, e0: number, audio: ReadonlyArray<ChannelLayout>): MixPlan => {
  const rangeStart = e0 + ((window.from - PRE_ROLL) * 1000) / MIX_RATE
  const rangeEnd = e0 + (window.to * 1000) / MIX_RATE
  const runs: MixRun[] = []
  for (const layout of audio) {
    const segs = layout.usable
    let run: Array<(typeof segs)[number]> = []
    let runAt = 0
    const flush = () => {
      const head = run[0]
      if (head === undefined) return
      // Usable segments are sorted by index, one per index: the one before is just before.
      const previous = segs[runAt - 1]
      const before = previous?.record.index === head.record.index - 1 ? previous : undefined
      const warm =
        before !== undefined && Math.abs(before.startMs + before.durationMs - head.startMs) <= RUN_MS
          ? [before]
          : []
      const records = [...warm, ...run].map((s) => s.record)
      const firstStart = (records[0] as MediaSegment).start_ms
      runs.push({
        channelId: layout.channelId,
        records,
        offset: Math.round(((firstStart - e0) * MIX_RATE) / 1000) - (window.from - PRE_ROLL),
      })
      run = []
    }
    const { from, to } = candidates(segs, rangeStart, rangeEnd)
    for (let k = from; k < to; k++) {
      const seg = segs[k] as (typeof segs)[number]
      if (seg.startMs >= rangeEnd || seg.startMs + seg.durationMs <= rangeStart) continue
      const prev = run.at(-1)
      if (
        prev !== undefined &&
        (seg.record.index !== prev.record.index + 1 ||
          Math.abs(seg.startMs - (prev.startMs + prev.durationMs)) > RUN_MS)
      )
        flush()
      if (run.length === 0) runAt = k
      run.push(seg)
    }
    flush()
  }
  const signature = createHash("sha256")
    .update(
      JSON.stringify({
        v: 1,
        e0,
        // Only the window's bounds: a window planned by an export (which also carries its
        // `originMs`) names the same piece as the one mixed incrementally.
        window: { from: window.from, to: window.to },
        runs: runs.map((r) => [r.channelId, r.offset, r.records.map((s) => [s.index, s.sha256])]),
      }),
    )
    .digest("hex")
    .slice(0, 32)
  return { window, runs, signature }
}

/** What `candidates` knows of a list of segments: checked up to `length`. */
interface SegmentOrder {
  length: number
  /** Starts never go back (so a binary search finds a time range). */
  sorted: boolean
  longestMs: number
}
const orders = new WeakMap<
  ReadonlyArray<{ readonly startMs: number; readonly durationMs: number }>,
  SegmentOrder
>()

/**
 * The index range of `segs` that can overlap `[rangeStart, rangeEnd)`: a binary search when the
 * segments start in order (always, in practice), else all of them. What it knows of a list is
 * kept and extended as the list grows, so a window costs O(log n), not O(n).
 */
const candidates = (
  segs: ReadonlyArray<{ readonly startMs: number; readonly durationMs: number }>,
  rangeStart: number,
  rangeEnd: number,
): { from: number; to: number } => {
  let order = orders.get(segs)
  if (order === undefined || order.length > segs.length) {
    order = { length: 0, sorted: true, longestMs: 0 }
    orders.set(segs, order)
  }
  for (; order.length < segs.length; order.length++) {
    const seg = segs[order.length] as { readonly startMs: number; readonly durationMs: number }
    if (order.length > 0 && seg.startMs < (segs[order.length - 1]?.startMs ?? 0)) order.sorted = false
    order.longestMs = Math.max(order.longestMs, seg.durationMs)
  }
  if (!order.sorted) return { from: 0, to: segs.length }
  // Before `from`, every segment ends before the range; from `to` on, each starts after it.
  const firstAtOrAfter = (ms: number) => {
    let lo = 0
    let hi = segs.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((segs[mid]?.startMs ?? 0) < ms) lo = mid + 1
      else hi = mid
    }
    return lo
  }
  return { from: firstAtOrAfter(rangeStart - order.longestMs), to: firstAtOrAfter(rangeEnd) }
}

/**
 * Whether a window's inputs are certain before the session ends: each stored audio channel has
 * laid out (certain prefix) past the window, ended before it, starts after it, or has sent
 * nothing while the others are far past the window.
 */
export const windowIsSettled = (
  window: AudioWindow,
  e0: number,
  audio: ReadonlyArray<{
    readonly layout: ChannelLayout | undefined
    /** How many segments (distinct indexes) the channel has sent. */
    readonly recordCount: number
  }>,
  latestMs: number,
  /** How long (ms, real time) this session's segments have been arriving. */
  receivingForMs: number,
): boolean => {
  const rangeEnd = e0 + (window.to * 1000) / MIX_RATE
  return audio.every(({ layout, recordCount }) => {
    if (recordCount === 0) return receivingForMs > ABSENT_AFTER_MS && latestMs > rangeEnd + ABSENT_AFTER_MS
    if (layout === undefined) return false
    if (layout.startMs >= rangeEnd) return true
    const last = layout.usable.at(-1)
    if (last === undefined) return false
    if (layout.endMs >= rangeEnd) return true
    // Ended: the certain prefix reaches the final segment.
    return last.record.final && layout.usable.length === recordCount
  })
}

/** Where each piece of a track lands: decode times in the track's timescale. */
export interface PlacedPart {
  readonly name: string
  readonly bytes: number
  readonly moofs: number
  readonly baseDecodeTime: number
  readonly duration: number
}

/** A window's mixed audio piece placed at `baseDecodeTime`; none for a window not mixed. */
export const placedMix = (piece: PieceInfo | undefined, baseDecodeTime: number): PlacedPart | undefined =>
  piece === undefined
    ? undefined
    : { name: piece.name, bytes: piece.bytes, moofs: piece.moofs, baseDecodeTime, duration: piece.duration }

/**
 * Places pieces on a track: each at its wall-clock time (minus its own presentation offset, plus
 * the track's `shift`), never overlapping the previous one.
 */
export const placeParts = (
  items: ReadonlyArray<{ readonly startMs: number; readonly piece: PieceInfo }>,
  e0: number,
  timescale: number,
  shift: number,
): PlacedPart[] => {
  let end = 0
  return items.map(({ startMs, piece }) => {
    const wanted = Math.round(((startMs - e0) * timescale) / 1000) + shift - piece.min_pts
    const baseDecodeTime = Math.max(wanted, end)
    end = baseDecodeTime + piece.duration
    return {
      name: piece.name,
      bytes: piece.bytes,
      moofs: piece.moofs,
      baseDecodeTime,
      duration: piece.duration,
    }
  })
}
