/**
 * `planMix` looks only at the segments near a window (a bisection over segments that start in
 * order): it must plan exactly what a pass over every segment plans, so a window keeps its name.
 */
import { createHash } from "node:crypto"
import type { ChannelId, MediaSegment, SessionId } from "@capture/protocol"
import { describe, expect, it } from "vitest"
import { PRE_ROLL } from "../src/internal/media.js"
import {
  type AudioWindow,
  type ChannelLayout,
  layoutChannel,
  type PieceInfo,
  planMix,
  rawKey,
  windowsForVideo,
} from "../src/internal/plan.js"

const T0 = 1_763_000_000_000
const RATE = 48_000

/** An audio channel of `count` segments of ~2 s, with clock jitter and a gap or two. */
const audioLayout = (channelId: string, count: number, seed: number): ChannelLayout => {
  let random = seed
  const next = () => {
    random = (random * 1_103_515_245 + 12_345) % 2 ** 31
    return random / 2 ** 31
  }
  const records: MediaSegment[] = []
  let start = T0 + seed * 7
  for (let index = 0; index < count; index++) {
    const duration = 2000 + Math.round((next() - 0.5) * 60)
    records.push({
      session_id: "cap-1" as SessionId,
      channel_id: channelId as ChannelId,
      index,
      start_ms: start,
      duration_ms: duration,
      sha256: `sha-${channelId}-${index}`,
      final: index === count - 1,
      container: "mpegts" as const,
      bytes: 1,
      stored_at: new Date(T0).toISOString(),
    })
    // Mostly continuous, sometimes a few ms off (RUN_MS decides), sometimes a gap.
    const roll = next()
    start += duration + (roll < 0.05 ? 3000 : roll < 0.2 ? Math.round(next() * 40) : 0)
  }
  const pieces = new Map<string, PieceInfo>(
    records.map((r) => [
      rawKey(r.channel_id, r.index, r.sha256),
      {
        key: rawKey(r.channel_id, r.index, r.sha256),
        name: `piece-${r.index}`,
        kind: "raw",
        ok: true,
        bytes: 1,
        timescale: RATE,
        samples: 1,
        duration: Math.round((r.duration_ms * RATE) / 1000),
        min_pts: 0,
        moofs: 1,
      },
    ]),
  )
  const layout = layoutChannel(channelId, records, pieces, true)
  if (layout === undefined) throw new Error("no layout")
  return layout
}

/** The plan's signature as a pass over every segment names it (planMix before it bisected). */
const everySegmentSignature = (window: AudioWindow, e0: number, audio: ReadonlyArray<ChannelLayout>) => {
  const rangeStart = e0 + ((window.from - PRE_ROLL) * 1000) / RATE
  const rangeEnd = e0 + (window.to * 1000) / RATE
  const runs: Array<[string, number, Array<[number, string]>]> = []
  for (const layout of audio) {
    const segs = layout.usable
    let run: Array<(typeof segs)[number]> = []
    const flush = () => {
      const head = run[0]
      if (head === undefined) return
      const before = segs.find((s) => s.record.index === head.record.index - 1)
      const warm =
        before !== undefined && Math.abs(before.startMs + before.durationMs - head.startMs) <= 20
          ? [before]
          : []
      const records = [...warm, ...run].map((s) => s.record)
      const firstStart = (records[0] as MediaSegment).start_ms
      runs.push([
        layout.channelId,
        Math.round(((firstStart - e0) * RATE) / 1000) - (window.from - PRE_ROLL),
        records.map((s) => [s.index, s.sha256]),
      ])
      run = []
    }
    for (const seg of segs) {
      if (seg.startMs >= rangeEnd || seg.startMs + seg.durationMs <= rangeStart) continue
      const prev = run.at(-1)
      if (
        prev !== undefined &&
        (seg.record.index !== prev.record.index + 1 ||
          Math.abs(seg.startMs - (prev.startMs + prev.durationMs)) > 20)
      )
        flush()
      run.push(seg)
    }
    flush()
  }
  return createHash("sha256")
    .update(JSON.stringify({ v: 1, e0, window: { from: window.from, to: window.to }, runs }))
    .digest("hex")
    .slice(0, 32)
}

describe("planMix", () => {
  it("plans every window as a pass over every segment does", () => {
    const mic = audioLayout("mic:default", 400, 1)
    const system = audioLayout("system_audio:default", 380, 2)
    const e0 = T0 + 500
    // Windows of ~2 s cut like a video's, from before the audio starts to after it ends.
    const items = Array.from({ length: 420 }, (_, i) => ({
      kind: "gap" as const,
      gap: {
        channel_id: "display:1",
        start_ms: e0 + i * 2002,
        duration_ms: 2002,
        reason: "missing" as const,
        segment_indexes: [],
      },
      startMs: e0 + i * 2002 - 1500,
      durationMs: 2002,
    }))
    const windows = windowsForVideo(items, e0).filter((w) => w.to > w.from)
    expect(windows.length).toBeGreaterThan(400)
    let withBoth = 0
    for (const window of windows) {
      const plan = planMix(window, e0, [mic, system])
      expect(plan.signature).toBe(everySegmentSignature(window, e0, [mic, system]))
      if (new Set(plan.runs.map((r) => r.channelId)).size === 2) withBoth++
    }
    expect(withBoth).toBeGreaterThan(300)
  })

  it("plans segments that do not start in order by looking at all of them", () => {
    const mic = audioLayout("mic:default", 60, 3)
    const usable = [...mic.usable]
    // Clocks that jumped back: a later segment dated before an earlier one.
    const [a, b] = [usable[30], usable[31]] as [(typeof usable)[number], (typeof usable)[number]]
    usable[30] = { ...b, startMs: a.startMs - 5000, record: { ...b.record, index: 30 } }
    usable[31] = { ...a, record: { ...a.record, index: 31 } }
    const odd: ChannelLayout = { ...mic, usable, items: usable }
    const windows = windowsForVideo(usable, T0)
    for (const window of windows.filter((w) => w.to > w.from))
      expect(planMix(window, T0, [odd]).signature).toBe(everySegmentSignature(window, T0, [odd]))
  })
})
