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
