import { Result } from "effect"
import { describe, expect, it } from "vitest"
import { decodeUnknown, formatPath } from "../src/Decode.js"
import type { CaptureError } from "../src/ErrorCode.js"
import { SessionCommand } from "../src/SessionCommand.js"
import { SessionEvent } from "../src/SessionEvent.js"

const failureOf = (result: Result.Result<unknown, CaptureError>): CaptureError => {
  if (Result.isSuccess(result)) throw new Error("expected a decoding failure")
  return result.failure
}

const base = { command_id: "c-1", session_id: "cap-1" }

describe("decodeUnknown", () => {
  it("names the offending array element's field", () => {
    const error = failureOf(
      decodeUnknown(SessionCommand)({
        ...base,
        type: "StartSession",
        channels: [{ channel_id: "mic:default" }, { channel_id: "display:1", type: "text" }],
      }),
    )
    expect(error).toMatchObject({ error_code: "invalid_field", field: "channels[1].type" })
  })

  it("reports a missing key as missing_field", () => {
    const error = failureOf(
      decodeUnknown(SessionCommand)({ ...base, type: "CreateSession", collection_id: "default" }),
    )
    expect(error).toMatchObject({ error_code: "missing_field", field: "end_user_id" })
  })

  it("reports a wrong type as invalid_field", () => {
    const error = failureOf(
      decodeUnknown(SessionCommand)({
        ...base,
        type: "CreateSession",
        collection_id: "default",
        end_user_id: 5,
      }),
    )
    expect(error).toMatchObject({ error_code: "invalid_field", field: "end_user_id" })
  })

  it("returns an error, not a throw, for an unknown event type", () => {
    const error = failureOf(decodeUnknown(SessionEvent)({ type: "SessionExploded", id: "evt-1" }))
    expect(error._tag).toBe("CaptureError")
  })

  it("formats paths the way clients write them", () => {
    expect(formatPath(["channels", 1, "channel_id"])).toBe("channels[1].channel_id")
  })
})
