/** The HLS playlist of an export (fMP4 segments, VOD), written from its manifest as it is read. */
import type { Manifest } from "../ExportManifest.js"

/** The playlist of `manifest`'s segments, `init.mp4` as their map. */
export const playlist = (manifest: Manifest): string => {
  const target = Math.max(1, ...manifest.segments.map((s) => Math.ceil(s.duration)))
  const lines = [
    "#EXTM3U",
    "#EXT-X-VERSION:7",
    `#EXT-X-TARGETDURATION:${target}`,
    "#EXT-X-MEDIA-SEQUENCE:0",
    "#EXT-X-PLAYLIST-TYPE:VOD",
    "#EXT-X-INDEPENDENT-SEGMENTS",
    '#EXT-X-MAP:URI="init.mp4"',
    ...manifest.segments.flatMap((s, i) => [`#EXTINF:${s.duration.toFixed(6)},`, `seg/${i}.m4s`]),
    "#EXT-X-ENDLIST",
    "",
  ]
  return lines.join("\n")
}
