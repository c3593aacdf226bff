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

/**
 * The playlist of the segments overlapping each range of `timeline` (seconds of the video), in
 * the timeline's order: a discontinuity where one range's segments do not follow the last (a
 * range earlier in the video than the one before it, or after a gap), a segment shared with the
 * run just written once, and the player started at the first range's start
 * (`EXT-X-START … PRECISE`). Undefined when no range holds any of the video.
 */
export const rangePlaylist = (manifest: Manifest, timeline: VideoTimeline): string | undefined => {
  const starts: Array<number> = []
  let at = 0
  for (const segment of manifest.segments) {
    starts.push(at)
    at += segment.duration
  }
  const lines: Array<string> = []
  // The run of segments written last: a range overlapping it continues it.
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
      if (last !== undefined) lines.push("#EXT-X-DISCONTINUITY")
      runFirst = first.i
    }
    for (const { i } of indexes) lines.push(...entry(manifest, i))
    last = indexes.at(-1)?.i
  }
  if (startOffset === undefined) return undefined
  return [
    ...header(manifest),
    `#EXT-X-START:TIME-OFFSET=${startOffset.toFixed(3)},PRECISE=YES`,
    ...lines,
    "#EXT-X-ENDLIST",
    "",
  ].join("\n")
}
