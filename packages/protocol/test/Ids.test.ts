import { Result, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { decodeUnknown } from "../src/Decode.js"
import {
  CollectionId,
  EventId,
  newEventId,
  newRtstreamId,
  newSessionId,
  newVideoId,
  SessionId,
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
})
