/**
 * Paused time, cut out of an export's muxed timeline, as OBS leaves a paused recording's pause
 * out: the spans when every stored channel was paused (`ExportRequested.data.paused_spans`, on
 * the recorder's clock, the clock segments are dated by) close up, and what follows moves earlier.
 * Pure planning beside `plan.ts`: the video channel's layout is cut here, and every window of the
 * audio mix says which wall-clock time its first sample stands for (`originMs`), so picture and
 * sound move together and stay in sync on both sides of a cut.
 *
 * Where a pause covers recorded frames (a recorder that kept capturing, clocks that disagree),
 * video is cut at segment edges, since cutting inside a segment means re-encoding it: a segment
 * more than half paused goes, any other stays whole. Gaps (black) and audio-only timelines are cut
 * exactly. A channel paused alone is not cut: it keeps its place in the timeline as a gap.
 */
import type { TimeSpan } from "@capture/protocol"
import {
  AUDIO_WINDOW,
  type AudioWindow,
  type ChannelLayout,
  GAP_MS,
  type LayoutItem,
  snapToFrame,
  windowsForAudio,
  windowsForVideo,
} from "./plan.js"

/** A stretch of wall-clock time (ms) left out of the muxed timeline. */
export interface Cut {
  readonly startMs: number
  readonly endMs: number
}

/** A window of the mixed audio, and the wall-clock time (ms) its timeline's zero stands for. */
export interface PlacedWindow extends AudioWindow {
  /** The timeline's zero plus the time cut before the window: `planMix`'s `e0` for it. */
  readonly originMs: number
}

/** A muxed timeline with its paused time cut out. */
export interface CutTimeline {
  /** One window per item of the video layout (audio only: fixed windows), in order. */
  readonly windows: ReadonlyArray<PlacedWindow>
  /** Wall-clock time (ms) of the timeline's first sample. */
  readonly startMs: number
  /** Time taken out of the timeline (ms). */
  readonly removedMs: number
}

/** The video channel's timeline with its paused time cut out. */
export interface CutVideo extends CutTimeline {
  /** The video layout left, each item moved earlier by the time cut before it. */
  readonly layout: ChannelLayout
}

/** The parts of `spans` within `[fromMs, toMs)`: an open span closed at `toMs`; sorted and merged. */
export const cutsWithin = (spans: ReadonlyArray<TimeSpan>, fromMs: number, toMs: number): Cut[] => {
  const clipped = spans
    .map((span) => ({
      startMs: Math.max(span.start_ms, fromMs),
      endMs: Math.min(span.end_ms ?? toMs, toMs),
    }))
    .filter((cut) => cut.endMs > cut.startMs)
    .sort((a, b) => a.startMs - b.startMs)
  const merged: Cut[] = []
  for (const cut of clipped) {
    const last = merged.at(-1)
    if (last !== undefined && cut.startMs <= last.endMs)
      merged[merged.length - 1] = { startMs: last.startMs, endMs: Math.max(last.endMs, cut.endMs) }
    else merged.push(cut)
  }
  return merged
}

/** How much of `[fromMs, toMs)` the cuts cover. */
const coveredMs = (cuts: ReadonlyArray<Cut>, fromMs: number, toMs: number): number =>
  cuts.reduce((sum, cut) => sum + Math.max(0, Math.min(toMs, cut.endMs) - Math.max(fromMs, cut.startMs)), 0)

/** The parts of `[fromMs, toMs)` no cut covers, in order. */
const uncovered = (cuts: ReadonlyArray<Cut>, fromMs: number, toMs: number): Array<[number, number]> => {
  const parts: Array<[number, number]> = []
  let at = fromMs
  for (const cut of cuts) {
    if (cut.endMs <= at || cut.startMs >= toMs) continue
    if (cut.startMs > at) parts.push([at, cut.startMs])
    at = Math.max(at, cut.endMs)
  }
  if (at < toMs) parts.push([at, toMs])
  return parts
}

/**
 * Cuts paused time out of the muxed video's channel. Gaps are cut where the pauses fall (a sliver
 * shorter than `GAP_MS` left of one goes too); segments go when more than half paused. When
 * nothing of the recording would be left, nothing is cut.
 */
export const cutVideo = (layout: ChannelLayout, spans: ReadonlyArray<TimeSpan>): CutVideo => {
  const uncut: CutVideo = {
    layout,
    windows: windowsForVideo(layout.items, layout.startMs).map((w) => ({ ...w, originMs: layout.startMs })),
    startMs: layout.startMs,
    removedMs: 0,
  }
  const cuts = cutsWithin(spans, layout.startMs, layout.endMs)
  if (cuts.length === 0) return uncut
  const kept: Array<{ readonly item: LayoutItem; readonly cutBeforeMs: number }> = []
  let removed = 0
  for (const item of layout.items) {
    const start = item.startMs
    const end = start + item.durationMs
    if (item.kind === "segment") {
      if (2 * coveredMs(cuts, start, end) > item.durationMs) removed += item.durationMs
      else kept.push({ item: { ...item, startMs: start - removed }, cutBeforeMs: removed })
      continue
    }
    let at = start
    for (const [from, to] of uncovered(cuts, start, end)) {
      if (to - from < GAP_MS) continue
      removed += from - at
      kept.push({ item: { ...item, startMs: from - removed, durationMs: to - from }, cutBeforeMs: removed })
      at = to
    }
    removed += end - at
  }
  const items = kept.map((k) => k.item)
  const usable = items.filter((i): i is Extract<LayoutItem, { kind: "segment" }> => i.kind === "segment")
  const first = usable[0]
  if (first === undefined || removed <= 0) return uncut
  const e0 = layout.startMs
  return {
    layout: {
      channelId: layout.channelId,
      items,
      startMs: e0,
      endMs: layout.endMs - removed,
      firstUsableMs: first.startMs,
      usable,
      gaps: items.flatMap((i) => (i.kind === "gap" ? [i.gap] : [])),
    },
    windows: windowsForVideo(items, e0).map((w, i) => ({ ...w, originMs: e0 + (kept[i]?.cutBeforeMs ?? 0) })),
    startMs: e0 + (kept[0]?.cutBeforeMs ?? 0),
    removedMs: removed,
  }
}

/**
 * Windows of an audio-only timeline from `e0` to `endMs` with paused time cut out exactly: fixed
 * windows over each stretch between pauses, the first window after a cut starting where the
 * last one before it ended. When nothing would be left, nothing is cut.
 */
export const cutAudio = (e0: number, endMs: number, spans: ReadonlyArray<TimeSpan>): CutTimeline => {
  const kept = uncovered(cutsWithin(spans, e0, endMs), e0, endMs)
  const windows: PlacedWindow[] = []
  let removed = 0
  let previousEnd = e0
  for (const [from, to] of kept) {
    removed += from - previousEnd
    previousEnd = to
    const originMs = e0 + removed
    const first = snapToFrame(from - originMs)
    const last = snapToFrame(to - originMs)
    for (let at = first; at < last; at += AUDIO_WINDOW)
      windows.push({ from: at, to: Math.min(last, at + AUDIO_WINDOW), originMs })
  }
  const removedMs = removed + (endMs - previousEnd)
  if (windows.length === 0 || removedMs <= 0) {
    const whole = windowsForAudio(e0, endMs).map((w) => ({ ...w, originMs: e0 }))
    return { windows: whole, startMs: e0, removedMs: 0 }
  }
  return { windows, startMs: (kept[0] as [number, number])[0], removedMs }
}
