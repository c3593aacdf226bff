import { Result } from "effect"
import { describe, expect, it } from "vitest"
import { decodeUnknown } from "../src/Decode.js"
import { Success } from "../src/HttpEnvelope.js"
import {
  isFinalSegment,
  SEGMENT_FINAL,
  SEGMENT_ROUTE,
  SegmentAck,
  SegmentHeaders,
  segmentPath,
} from "../src/SegmentIngest.js"
import { checkRoundTrip } from "./roundTrip.js"

describe("SegmentIngest", () => {
  it("names the headers in lower case, as Node reports them", () => {
    for (const name of Object.values(SegmentHeaders)) expect(name).toBe(name.toLowerCase())
    expect(SegmentHeaders.startMs).toBe("x-segment-start-ms")
    expect(SegmentHeaders.final).toBe("x-segment-final")
  })

  it("builds the path the gateway's route matches, the channel id encoded", () => {
    expect(SEGMENT_ROUTE).toBe("/capture/session/:session_id/channels/:channel_id/segments/:index")
    expect(segmentPath("cap-1", "mic:default", 3)).toBe(
      "/capture/session/cap-1/channels/mic%3Adefault/segments/3",
    )
  })

  it("reads the final flag as sent, and nothing else", () => {
    expect(isFinalSegment(SEGMENT_FINAL)).toBe(true)
    expect(isFinalSegment("true")).toBe(true)
    for (const value of [undefined, "", "0", "false", "yes"]) expect(isFinalSegment(value)).toBe(false)
  })

  it("round-trips the acknowledgement", async () => {
    await checkRoundTrip(SegmentAck)
  })

  it("decodes the gateway's answer and refuses a negative index or a foreign session id", () => {
    const ack = { session_id: "cap-1", channel_id: "mic:default", index: 3, duplicate: false }
    expect(Result.isSuccess(decodeUnknown(Success(SegmentAck))({ success: true, data: ack }))).toBe(true)
    expect(Result.isFailure(decodeUnknown(SegmentAck)({ ...ack, index: -1 }))).toBe(true)
    expect(Result.isFailure(decodeUnknown(SegmentAck)({ ...ack, session_id: "rts-1" }))).toBe(true)
  })
})
