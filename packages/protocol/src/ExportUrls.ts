/**
 * Where an export is served: its files under `/media/{video_id}/` and its player page at
 * `/player/{video_id}`. The gateway serves these routes; the muxer and the gateway hand out the
 * URLs built here (`stream_url`, `player_url`, `download_url`), so both agree on the layout.
 */
import { pathOf } from "./HttpRoute.js"

/** The route of an export's files (`*`: a file path such as `index.m3u8` or `raw/mic_default.m4a`). */
export const MEDIA_ROUTE = "/media/:video_id/*"

/** The route of an export's embeddable player page. */
export const PLAYER_ROUTE = "/player/:video_id"

/** An export's HLS playlist, relative to its media folder. */
export const EXPORT_PLAYLIST_FILE = "index.m3u8"

/** An export's single-file MP4, relative to its media folder. */
export const EXPORT_DOWNLOAD_FILE = "video.mp4"

/** Joins a base URL (`https://capture.example.com`, with or without a trailing slash) and a path. */
const under = (publicUrl: string, path: string): string => `${publicUrl.replace(/\/+$/, "")}${path}`

/** The public URL of one file of an export (`file` relative to `/media/{video_id}/`). */
export const mediaUrl = (publicUrl: string, videoId: string, file: string): string =>
  under(publicUrl, pathOf(MEDIA_ROUTE, { video_id: videoId, "*": file }))

/** The public URL of an export's player page. */
export const playerUrl = (publicUrl: string, videoId: string): string =>
  under(publicUrl, pathOf(PLAYER_ROUTE, { video_id: videoId }))

/** The URLs an export is known by. */
export interface ExportUrls {
  /** The HLS playlist. */
  readonly stream_url: string
  /** The embeddable player page. */
  readonly player_url: string
  /** The single-file MP4. */
  readonly download_url: string
}

/**
 * The URLs of export `videoId` on the server at `publicUrl`.
 *
 * @example
 * exportUrls("https://capture.example.com", "m-01J…").stream_url
 * // "https://capture.example.com/media/m-01J…/index.m3u8"
 */
export const exportUrls = (publicUrl: string, videoId: string): ExportUrls => ({
  stream_url: mediaUrl(publicUrl, videoId, EXPORT_PLAYLIST_FILE),
  player_url: playerUrl(publicUrl, videoId),
  download_url: mediaUrl(publicUrl, videoId, EXPORT_DOWNLOAD_FILE),
})

/** Ranges of an export's timeline, in seconds from its start: `[[start, end], …]`. */
export type VideoTimeline = ReadonlyArray<readonly [number, number]>

/** At most this many ranges in one timeline (a search's shots compiled, at most). */
export const MAX_TIMELINE_RANGES = 100

const seconds = (value: number): string => String(Math.round(value * 1000) / 1000)

/** A timeline as a query value: `12.5-20,31-40.25`. */
export const timelineParam = (timeline: VideoTimeline): string =>
  timeline.map(([start, end]) => `${seconds(start)}-${seconds(end)}`).join(",")

/** The timeline a query value names, or undefined when it is not one (empty, a range ending first, too many). */
export const parseTimelineParam = (value: string): VideoTimeline | undefined => {
  const ranges = value.split(",")
  if (ranges.length > MAX_TIMELINE_RANGES) return undefined
  const timeline: Array<readonly [number, number]> = []
  for (const range of ranges) {
    const match = /^(\d{1,7}(?:\.\d{1,6})?)-(\d{1,7}(?:\.\d{1,6})?)$/.exec(range)
    if (match === null) return undefined
    const start = Number(match[1])
    const end = Number(match[2])
    if (!(end > start)) return undefined
    timeline.push([start, end])
  }
  return timeline
}

/**
 * The URLs playing `timeline` of export `videoId`: its HLS playlist cut to those ranges (whole
 * segments, the first range starting precisely) and the player page on it. Public like the export.
 *
 * @example
 * exportRangeUrls("https://capture.example.com", "m-01J…", [[12, 20]]).stream_url
 * // "https://capture.example.com/media/m-01J…/index.m3u8?timeline=12-20"
 */
export const exportRangeUrls = (
  publicUrl: string,
  videoId: string,
  timeline: VideoTimeline,
): Pick<ExportUrls, "stream_url" | "player_url"> => {
  const query = `timeline=${timelineParam(timeline)}`
  return {
    stream_url: `${mediaUrl(publicUrl, videoId, EXPORT_PLAYLIST_FILE)}?${query}`,
    player_url: `${playerUrl(publicUrl, videoId)}?${query}`,
  }
}

/**
 * The MP4 of `timeline` of export `videoId` (`video.mp4?timeline=…`): the segments of its range
 * playlist one after another, for players without HLS. Public like the export.
 */
export const exportRangeFileUrl = (publicUrl: string, videoId: string, timeline: VideoTimeline): string =>
  `${mediaUrl(publicUrl, videoId, EXPORT_DOWNLOAD_FILE)}?timeline=${timelineParam(timeline)}`

/** Ranges of one export in a compiled stream. */
export interface CompiledPart {
  readonly video_id: string
  readonly timeline: VideoTimeline
}

/** A compiled stream's parts as its URLs' query: `v=m-…:12-20,31-40&v=m-…:3-9`. */
export const compiledQuery = (parts: ReadonlyArray<CompiledPart>): string =>
  parts.map((part) => `v=${part.video_id}:${timelineParam(part.timeline)}`).join("&")

/** The parts a compiled stream's query names, or undefined when it names none or is malformed. */
export const parseCompiledQuery = (
  values: ReadonlyArray<string>,
): ReadonlyArray<CompiledPart> | undefined => {
  if (values.length === 0 || values.length > MAX_TIMELINE_RANGES) return undefined
  const parts: Array<CompiledPart> = []
  let ranges = 0
  for (const value of values) {
    const match = /^(m-[A-Za-z0-9_-]{1,64}):(.+)$/.exec(value)
    const timeline = match === null ? undefined : parseTimelineParam(match[2] ?? "")
    if (match === null || timeline === undefined) return undefined
    ranges += timeline.length
    if (ranges > MAX_TIMELINE_RANGES) return undefined
    parts.push({ video_id: match[1] ?? "", timeline })
  }
  return parts
}

/**
 * The URLs playing ranges of several exports as one stream (a search's shots compiled): for one
 * export, its own range URLs (`exportRangeUrls`); else `/compile/index.m3u8?v=…` and its player
 * page. Public like the exports: their ids are unguessable.
 */
export const compiledUrls = (
  publicUrl: string,
  parts: ReadonlyArray<CompiledPart>,
): Pick<ExportUrls, "stream_url" | "player_url"> => {
  const only = parts.length === 1 ? parts[0] : undefined
  if (only !== undefined) return exportRangeUrls(publicUrl, only.video_id, only.timeline)
  const query = compiledQuery(parts)
  return {
    stream_url: `${under(publicUrl, "/compile/index.m3u8")}?${query}`,
    player_url: `${under(publicUrl, "/compile/player")}?${query}`,
  }
}
