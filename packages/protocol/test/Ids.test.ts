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
  RtstreamId,
  rawAssetId,
  rtstreamIdOf,
  SessionId,
  sessionIdOfRtstream,
  VideoId,
} from "../src/Ids.js"

describe("Ids", () => {
  it("prefixes each kind of id", () => {
    expect(newSessionId()).toMatch(/^cap-[0-9A-Z]{26}$/)
    expect(newRtstreamId()).toMatch(/^rts-/)
    expect(newVideoId()).toMatch(/^m-/)
    expect(newEventId()).toMatch(/^evt-/)
  })

  it("derives each rtstream's id from its session and leads back to it", () => {
    const sessionId = newSessionId()
    const ids = [0, 1, 2, 31].map((index) => rtstreamIdOf(sessionId, index))
    expect(ids[0]).toBe(`rts-${sessionId.slice(4)}-00`)
    expect(ids.every((id) => Schema.is(RtstreamId)(id))).toBe(true)
    expect(ids.map((id) => sessionIdOfRtstream(id ?? ""))).toEqual([
      sessionId,
      sessionId,
      sessionId,
      sessionId,
    ])
    expect([...ids].sort()).toEqual(ids)
    // A session id with dashes of its own, one ending like an index.
    const dashed = "cap-a-b-07" as SessionId
    expect(sessionIdOfRtstream(rtstreamIdOf(dashed, 3) ?? "")).toBe(dashed)
    // Too long to carry, or no index a session has.
    expect(rtstreamIdOf(`cap-${"x".repeat(62)}` as SessionId, 0)).toBeUndefined()
    expect(rtstreamIdOf(sessionId, 100)).toBeUndefined()
    // Ids drawn at random (rtstreams made before ids were derived) and malformed ones name no session.
    for (const id of [
      newRtstreamId(),
      "rts-",
      "rts--00",
      "rts-abc-1",
      "rts-a b-00",
      "cap-x-00",
      "rts-x-00x",
    ]) {
      expect(sessionIdOfRtstream(id), id).toBeUndefined()
    }
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
