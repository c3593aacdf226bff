/** Cutting paused time out of a muxed timeline, as planned (no media: see Muxer.test.ts for that). */
import type { ChannelId, MediaSegment, SessionId } from "@capture/protocol"
import { describe, expect, it } from "vitest"
import { cutAudio, cutsWithin, cutVideo } from "../src/internal/pauses.js"
import {
  type ChannelLayout,
  layoutChannel,
  type PieceInfo,
  planMix,
  rawKey,
  snapToFrame,
  windowsForVideo,
} from "../src/internal/plan.js"

const T0 = 1_763_000_000_000
const TIMESCALE = 90_000

/** A video channel laid out from segments given as [start, end) in seconds after T0. */
const layoutOf = (segments: ReadonlyArray<readonly [number, number]>): ChannelLayout => {
  const records: MediaSegment[] = segments.map(([from, to], index) => ({
    session_id: "cap-1" as SessionId,
    channel_id: "display:1" as ChannelId,
    index,
    start_ms: T0 + from * 1000,
    duration_ms: (to - from) * 1000,
    sha256: `sha-${index}`,
    final: index === segments.length - 1,
    container: "mpegts" as const,
    bytes: 1,
    stored_at: new Date(T0).toISOString(),
  }))
  const pieces = new Map<string, PieceInfo>(
    records.map((r) => [
      rawKey(r.channel_id, r.index, r.sha256),
      {
        key: rawKey(r.channel_id, r.index, r.sha256),
        name: `piece-${r.index}`,
        kind: "raw",
        ok: true,
        bytes: 1,
        timescale: TIMESCALE,
        samples: 1,
        duration: (r.duration_ms * TIMESCALE) / 1000,
        min_pts: 0,
        moofs: 1,
      },
    ]),
  )
  const layout = layoutChannel("display:1", records, pieces, true)
  if (layout === undefined) throw new Error("no layout")
  return layout
}

const span = (from: number, to: number | null) => ({
  start_ms: T0 + from * 1000,
  end_ms: to === null ? null : T0 + to * 1000,
})

/** Items as [kind, start s, duration s] relative to T0. */
const itemsOf = (layout: ChannelLayout) =>
  layout.items.map((i) => [i.kind, (i.startMs - T0) / 1000, i.durationMs / 1000])

describe("cutsWithin", () => {
  it("clips spans to the timeline, closes an open one at its end, and merges overlaps", () => {
    expect(cutsWithin([span(7, null), span(-3, 1), span(4, 6), span(5, 7)], T0, T0 + 10_000)).toEqual([
      { startMs: T0, endMs: T0 + 1000 },
      { startMs: T0 + 4000, endMs: T0 + 10_000 },
    ])
    expect(cutsWithin([span(11, 12), span(-5, -1)], T0, T0 + 10_000)).toEqual([])
  })
})

describe("cutVideo", () => {
  it("with no pause plans the same mix windows, by name, as the incremental mixing did", () => {
    const video = layoutOf([
      [0, 2],
      [2, 4],
      [4, 6],
    ])
    const audio = {
      ...layoutOf([
        [0, 2],
        [2, 4],
        [4, 6],
      ]),
      channelId: "mic:1",
    }
    const incremental = windowsForVideo(video.items, video.startMs).map(
      (w) => planMix(w, video.startMs, [audio]).signature,
    )
    const atExport = cutVideo(video, []).windows.map((w) => planMix(w, w.originMs, [audio]).signature)
    expect(atExport).toEqual(incremental)
    expect(new Set(incremental).size).toBe(3)
  })

  it("closes a pause the recorder made (a hole in every channel) exactly", () => {
    const layout = layoutOf([
      [0, 2],
      [2, 3],
      [6, 8],
      [8, 10],
    ])
    expect(itemsOf(layout)).toContainEqual(["gap", 3, 3])
    const cut = cutVideo(layout, [span(3, 6)])
    expect(cut.removedMs).toBe(3000)
    expect(cut.startMs).toBe(T0)
    expect(itemsOf(cut.layout)).toEqual([
      ["segment", 0, 2],
      ["segment", 2, 1],
      ["segment", 3, 2],
      ["segment", 5, 2],
    ])
    expect(cut.layout.gaps).toEqual([])
    // Audio after the cut comes from 3 s later on the wall clock; the windows run on unbroken.
    expect(cut.windows.map((w) => w.originMs - T0)).toEqual([0, 0, 3000, 3000])
    expect(cut.windows.map((w) => [w.from, w.to])).toEqual([
      [0, snapToFrame(2000)],
      [snapToFrame(2000), snapToFrame(3000)],
      [snapToFrame(3000), snapToFrame(5000)],
      [snapToFrame(5000), snapToFrame(7000)],
    ])
  })

  it("keeps black for the part of a hole that was not paused everywhere, and drops slivers", () => {
    const layout = layoutOf([
      [0, 3],
      [6, 8],
    ])
    const partly = cutVideo(layout, [span(4, 6)])
    expect(partly.removedMs).toBe(2000)
    expect(itemsOf(partly.layout)).toEqual([
      ["segment", 0, 3],
      ["gap", 3, 1],
      ["segment", 4, 2],
    ])
    expect(partly.windows.map((w) => w.originMs - T0)).toEqual([0, 0, 2000])
    const sliver = cutVideo(layout, [span(3.05, 6)])
    expect(sliver.removedMs).toBe(3000)
    expect(itemsOf(sliver.layout)).toEqual([
      ["segment", 0, 3],
      ["segment", 3, 2],
    ])
  })

  it("cuts recorded frames at segment edges: a segment more than half paused goes", () => {
    const layout = layoutOf([
      [0, 2],
      [2, 4],
      [4, 6],
      [6, 8],
      [8, 10],
    ])
    const half = cutVideo(layout, [span(3, 6)])
    expect(half.removedMs).toBe(2000)
    expect(itemsOf(half.layout).map(([, start]) => start)).toEqual([0, 2, 4, 6])
    expect(cutVideo(layout, [span(2.5, 6)]).removedMs).toBe(4000)
    // Paused from the start: the timeline starts at the first segment kept.
    const leading = cutVideo(layout, [span(-5, 1.5)])
    expect(leading.removedMs).toBe(2000)
    expect(leading.startMs).toBe(T0 + 2000)
    expect(leading.windows[0]?.originMs).toBe(T0 + 2000)
    // Still paused when the session stopped: the rest goes.
    expect(cutVideo(layout, [span(7.5, null)]).removedMs).toBe(2000)
  })

  it("cuts nothing when nothing would be left, or nothing was paused", () => {
    const layout = layoutOf([
      [0, 2],
      [2, 4],
    ])
    for (const spans of [[span(-1, null)], [], [span(20, 30)]]) {
      const cut = cutVideo(layout, spans)
      expect(cut.removedMs).toBe(0)
      expect(cut.layout).toBe(layout)
      expect(cut.windows.every((w) => w.originMs === T0)).toBe(true)
    }
  })
})

describe("cutAudio", () => {
  it("cuts an audio-only timeline exactly, the windows running on where the pause closed", () => {
    const cut = cutAudio(T0, T0 + 10_000, [span(3, 6)])
    expect(cut.removedMs).toBe(3000)
    expect(cut.startMs).toBe(T0)
    const windows = cut.windows
    for (const [i, w] of windows.entries()) if (i > 0) expect(w.from).toBe(windows[i - 1]?.to)
    expect(windows.at(-1)?.to).toBe(snapToFrame(7000))
    expect(windows.filter((w) => w.originMs === T0).at(-1)?.to).toBe(snapToFrame(3000))
    expect(windows.filter((w) => w.originMs === T0 + 3000)[0]?.from).toBe(snapToFrame(3000))
  })

  it("starts at the end of a pause that began before the timeline, and cuts nothing when all was paused", () => {
    const leading = cutAudio(T0, T0 + 4000, [span(-1, 1)])
    expect(leading).toMatchObject({ startMs: T0 + 1000, removedMs: 1000 })
    expect(leading.windows.every((w) => w.originMs === T0 + 1000)).toBe(true)
    expect(leading.windows.at(-1)?.to).toBe(snapToFrame(3000))
    const all = cutAudio(T0, T0 + 4000, [span(-1, null)])
    expect(all).toMatchObject({ startMs: T0, removedMs: 0 })
    expect(all.windows.at(-1)?.to).toBe(snapToFrame(4000))
  })
})
