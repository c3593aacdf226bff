import { Result, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { decodeUnknown } from "../src/Decode.js"
import {
  AssetId,
  AudioId,
  CollectionId,
  EventId,
  newEventId,
  newRtstreamId,
  newSessionId,
  newVideoId,
  rawAssetId,
  SessionId,
  VideoId,
} from "../src/Ids.js"

describe("Ids", () => {
  it("prefixes each kind of id", () => {
    expect(newSessionId()).toMatch(/^cap-[0-9A-Z]{26}$/)
    expect(newRtstreamId()).toMatch(/^rts-/)
    expect(newVideoId()).toMatch(/^m-/)
    expect(newEventId()).toMatch(/^evt-/)
  })

  it("sorts session ids by creation time", () => {
    const times = [0, 1, 31, 32, 1_000, 1_710_000_000_000, 1_710_000_000_001, 2 ** 47]
    for (let i = 1; i < times.length; i++) {
      expect(newSessionId(times[i - 1]) < newSessionId(times[i])).toBe(true)
    }
  })

  it("accepts fresh ids and refuses wrong prefixes", () => {
    expect(Schema.is(SessionId)(newSessionId())).toBe(true)
    expect(Schema.is(EventId)(newEventId())).toBe(true)
    expect(Result.isFailure(decodeUnknown(SessionId)(newRtstreamId()))).toBe(true)
    expect(Result.isFailure(decodeUnknown(SessionId)("cap-"))).toBe(true)
    expect(Schema.is(CollectionId)("default")).toBe(true)
    expect(Schema.is(CollectionId)("m-1")).toBe(false)
  })

  it("derives raw asset ids from the export and the channel: m- for video, a- for audio", () => {
    const video = newVideoId()
    const display = rawAssetId(video, "display:1", "video")
    const mic = rawAssetId(video, "mic:default", "audio")
    expect(display).toMatch(/^m-[0-9A-Z]{26}$/)
    expect(mic).toMatch(/^a-[0-9A-Z]{26}$/)
    expect(Schema.is(VideoId)(display)).toBe(true)
    expect(Schema.is(AudioId)(mic)).toBe(true)
    expect(Schema.is(AssetId)(mic) && Schema.is(AssetId)(display)).toBe(true)
    // The same inputs (a re-run of the export) give the same ids; anything else, other ids.
    expect(rawAssetId(video, "display:1", "video")).toBe(display)
    expect(rawAssetId(video, "display:2", "video")).not.toBe(display)
    expect(rawAssetId(newVideoId(), "display:1", "video")).not.toBe(display)
    // They carry the export's time, so they sort with it.
    expect(display.slice(2, 12)).toBe(video.slice(2, 12))
    expect(display).not.toBe(video)
  })
})
