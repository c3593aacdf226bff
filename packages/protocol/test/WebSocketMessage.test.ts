import { Result } from "effect"
import { describe, expect, it } from "vitest"
import { decodeUnknown } from "../src/Decode.js"
import { captureError } from "../src/ErrorCode.js"
import { LIFECYCLE_EVENT_NAMES } from "../src/LifecycleEvent.js"
import { errorMessageOf, WebSocketMessage } from "../src/WebSocketMessage.js"
import { checkRoundTrip } from "./roundTrip.js"

const kindOf = (message: WebSocketMessage): string =>
  "connection_id" in message
    ? "connection"
    : message.channel === "capture_session"
      ? message.event
      : message.channel

describe("WebSocketMessage", () => {
  it("round-trips every message kind", async () => {
    const seen = await checkRoundTrip(WebSocketMessage, 500)
    expect(new Set(seen.map(kindOf))).toEqual(
      new Set([
        "connection",
        ...LIFECYCLE_EVENT_NAMES,
        "transcript",
        "visual_index",
        "scene_index",
        "audio_index",
        "alert",
        "error",
      ]),
    )
  })

  it("decodes the reference's transcript message", () => {
    const message = decodeUnknown(WebSocketMessage)({
      channel: "transcript",
      rtstream_id: "rts-xxx",
      rtstream_name: "mic:default",
      data: { text: "Let's schedule the meeting", is_final: true, start: 1710000001234, end: 1710000002345 },
    })
    expect(Result.isSuccess(message) && message.success).toMatchObject({ channel: "transcript" })
  })

  it("refuses an alert with confidence above 1", () => {
    const message = decodeUnknown(WebSocketMessage)({
      channel: "alert",
      rtstream_id: "rts-1",
      rtstream_name: "display:1",
      data: { label: "x", triggered: true, confidence: 1.5, start: 0, end: 1 },
    })
    expect(Result.isFailure(message)).toBe(true)
  })

  it("reports a CaptureError as an error message", () => {
    expect(errorMessageOf(captureError("forbidden", "not yours"))).toEqual({
      channel: "error",
      error_code: "forbidden",
      message: "not yours",
    })
  })
})
