/** The HLS playlist of an export (fMP4 segments, VOD), written from its manifest as it is read. */
import type { VideoTimeline } from "@capture/protocol"
import type { Manifest } from "../ExportManifest.js"

const header = (manifest: Manifest): Array<string> => [
  "#EXTM3U",
  "#EXT-X-VERSION:7",
  `#EXT-X-TARGETDURATION:${Math.max(1, ...manifest.segments.map((s) => Math.ceil(s.duration)))}`,
  "#EXT-X-MEDIA-SEQUENCE:0",
  "#EXT-X-PLAYLIST-TYPE:VOD",
  "#EXT-X-INDEPENDENT-SEGMENTS",
  '#EXT-X-MAP:URI="init.mp4"',
]

const entry = (manifest: Manifest, i: number): Array<string> => [
  `#EXTINF:${(manifest.segments[i]?.duration ?? 0).toFixed(6)},`,
  `seg/${i}.m4s`,
]

/** The playlist of `manifest`'s segments, `init.mp4` as their map. */
export const playlist = (manifest: Manifest): string =>
  [
    ...header(manifest),
    ...manifest.segments.flatMap((_, i) => entry(manifest, i)),
    "#EXT-X-ENDLIST",
    "",
  ].join("\n")

/** The segments of an export's ranges, in runs (a run follows on in the video), and where playing starts in the first. */
export interface RangeSegments {
  readonly runs: ReadonlyArray<ReadonlyArray<number>>
  readonly startOffset: number
}

/**
 * The segments overlapping each range of `timeline` (seconds of the video), in the timeline's
 * order: a new run where one range's segments do not follow the last (a range earlier in the
 * video than the one before it, or after a gap), a segment shared with the run just taken once.
 * Undefined when no range holds any of the video.
 */
export const rangeSegments = (manifest: Manifest, timeline: VideoTimeline): RangeSegments | undefined => {
  const starts: Array<number> = []
  let at = 0
  for (const segment of manifest.segments) {
    starts.push(at)
    at += segment.duration
  }
  const runs: Array<Array<number>> = []
  // The run of segments taken last: a range overlapping it continues it.
  let runFirst: number | undefined
  let last: number | undefined
  let startOffset: number | undefined
  for (const [from, to] of timeline) {
    let indexes = manifest.segments
      .map((segment, i) => ({ i, start: starts[i] ?? 0, end: (starts[i] ?? 0) + segment.duration }))
      .filter((s) => s.start < to && s.end > from)
    const head = indexes[0]?.i
    const previous = last
    if (
      head !== undefined &&
      runFirst !== undefined &&
      previous !== undefined &&
      head >= runFirst &&
      head <= previous
    ) {
      indexes = indexes.filter((s) => s.i > previous)
    }
    const first = indexes[0]
    if (first === undefined) continue
    startOffset ??= Math.max(0, from - first.start)
    if (last === undefined || first.i !== last + 1) {
      runs.push([])
      runFirst = first.i
    }
    runs.at(-1)?.push(...indexes.map(({ i }) => i))
    last = indexes.at(-1)?.i
  }
  return startOffset === undefined ? undefined : { runs, startOffset }
}

/** A run of segments of one export: the lines naming them, and where playing starts in the first. */
interface RangeEntries {
  readonly lines: ReadonlyArray<string>
  readonly startOffset: number
}

/** `rangeSegments` as playlist entries (a discontinuity between runs), `prefix` before each URI. */
const rangeEntries = (manifest: Manifest, timeline: VideoTimeline, prefix = ""): RangeEntries | undefined => {
  const segments = rangeSegments(manifest, timeline)
  if (segments === undefined) return undefined
  const lines = segments.runs.flatMap((run, r) => [
    ...(r === 0 ? [] : ["#EXT-X-DISCONTINUITY"]),
    ...run.flatMap((i) => {
      const [extinf, uri] = entry(manifest, i)
      return [extinf as string, `${prefix}${uri}`]
    }),
  ])
  return { lines, startOffset: segments.startOffset }
}

/**
 * The playlist of the segments overlapping each range of `timeline` (seconds of the video), in
 * the timeline's order (`rangeEntries`), the player started at the first range's start
 * (`EXT-X-START … PRECISE`). Undefined when no range holds any of the video.
 */
export const rangePlaylist = (manifest: Manifest, timeline: VideoTimeline): string | undefined => {
  const entries = rangeEntries(manifest, timeline)
  if (entries === undefined) return undefined
  return [
    ...header(manifest),
    `#EXT-X-START:TIME-OFFSET=${entries.startOffset.toFixed(3)},PRECISE=YES`,
    ...entries.lines,
    "#EXT-X-ENDLIST",
    "",
  ].join("\n")
}

/** Ranges of one export in a compiled playlist, and the URI prefix of its files from the playlist. */
export interface CompiledPart {
  readonly manifest: Manifest
  readonly timeline: VideoTimeline
  /** e.g. `../media/m-…/`: where the export's `init.mp4` and `seg/` are, relative to the playlist. */
  readonly prefix: string
}

/**
 * One playlist of ranges of several exports, in order (a search's shots compiled): each export's
 * run opens with a discontinuity and its own `EXT-X-MAP` (each export has its own init segment).
 * Undefined when no range holds any video.
 */
export const compiledPlaylist = (parts: ReadonlyArray<CompiledPart>): string | undefined => {
  const lines: Array<string> = []
  let startOffset: number | undefined
  let target = 1
  for (const part of parts) {
    const entries = rangeEntries(part.manifest, part.timeline, part.prefix)
    if (entries === undefined) continue
    startOffset ??= entries.startOffset
    target = Math.max(target, ...part.manifest.segments.map((s) => Math.ceil(s.duration)))
    if (lines.length > 0) lines.push("#EXT-X-DISCONTINUITY")
    lines.push(`#EXT-X-MAP:URI="${part.prefix}init.mp4"`, ...entries.lines)
  }
  if (startOffset === undefined) return undefined
  return [
    "#EXTM3U",
    "#EXT-X-VERSION:7",
    `#EXT-X-TARGETDURATION:${target}`,
    "#EXT-X-MEDIA-SEQUENCE:0",
    "#EXT-X-PLAYLIST-TYPE:VOD",
    "#EXT-X-INDEPENDENT-SEGMENTS",
    `#EXT-X-START:TIME-OFFSET=${startOffset.toFixed(3)},PRECISE=YES`,
    ...lines,
    "#EXT-X-ENDLIST",
    "",
  ].join("\n")
}
