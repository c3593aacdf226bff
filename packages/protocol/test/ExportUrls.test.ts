import { describe, expect, it } from "vitest"
import {
  EXPORT_DOWNLOAD_FILE,
  EXPORT_PLAYLIST_FILE,
  exportRangeUrls,
  exportUrls,
  MEDIA_ROUTE,
  mediaUrl,
  PLAYER_ROUTE,
  parseTimelineParam,
  playerUrl,
  timelineParam,
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

  it("writes a timeline into URLs and reads it back, refusing what is not one", () => {
    expect(
      exportRangeUrls(base, videoId, [
        [12.5, 20],
        [31, 40.1234],
      ]),
    ).toEqual({
      stream_url: `${base}/media/${videoId}/index.m3u8?timeline=12.5-20,31-40.123`,
      player_url: `${base}/player/${videoId}?timeline=12.5-20,31-40.123`,
    })
    expect(
      parseTimelineParam(
        timelineParam([
          [0, 4],
          [7.25, 9],
        ]),
      ),
    ).toEqual([
      [0, 4],
      [7.25, 9],
    ])
    for (const bad of [
      "",
      "9-3",
      "4-4",
      "a-b",
      "1-2,",
      "-1-2",
      "1e3-2e3",
      Array(101).fill("1-2").join(","),
    ]) {
      expect(parseTimelineParam(bad), bad).toBeUndefined()
    }
  })
})
