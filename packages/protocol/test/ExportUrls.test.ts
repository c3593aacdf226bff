import { describe, expect, it } from "vitest"
import {
  EXPORT_DOWNLOAD_FILE,
  EXPORT_PLAYLIST_FILE,
  exportUrls,
  MEDIA_ROUTE,
  mediaUrl,
  PLAYER_ROUTE,
  playerUrl,
} from "../src/ExportUrls.js"

const base = "https://capture.example.com"
const videoId = "m-01JC0000000000000000000000"

describe("ExportUrls", () => {
  it("lays out an export's URLs under the media and player routes", () => {
    expect(exportUrls(base, videoId)).toEqual({
      stream_url: `${base}/media/${videoId}/index.m3u8`,
      player_url: `${base}/player/${videoId}`,
      download_url: `${base}/media/${videoId}/video.mp4`,
    })
    expect(MEDIA_ROUTE).toBe("/media/:video_id/*")
    expect(PLAYER_ROUTE).toBe("/player/:video_id")
    expect(EXPORT_PLAYLIST_FILE).toBe("index.m3u8")
    expect(EXPORT_DOWNLOAD_FILE).toBe("video.mp4")
  })

  it("gives the same URLs whether or not the base ends with a slash", () => {
    expect(exportUrls(`${base}/`, videoId)).toEqual(exportUrls(base, videoId))
    expect(playerUrl(`${base}//`, videoId)).toBe(`${base}/player/${videoId}`)
  })

  it("addresses a raw asset's file below the video's folder", () => {
    expect(mediaUrl(base, videoId, "raw/display_1.mp4")).toBe(`${base}/media/${videoId}/raw/display_1.mp4`)
  })
})
