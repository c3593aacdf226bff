import { Result, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { decodeJson, decodeUnknown, formatPath } from "../src/Decode.js"
import type { CaptureError } from "../src/ErrorCode.js"
import { SessionId } from "../src/Ids.js"
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

describe("decodeJson", () => {
  const Timer = Schema.Struct({
    session_id: SessionId,
    timer: Schema.Literals(["start", "stop"]),
    deadline: Schema.String,
  })
  const timer = { session_id: "cap-1", timer: "stop", deadline: "2026-01-20T12:35:26.000Z" }

  it("decodes text and UTF-8 bytes alike", () => {
    const text = JSON.stringify(timer)
    const decode = decodeJson(Timer)
    expect(Result.getOrThrow(decode(text))).toEqual(timer)
    expect(decode(new TextEncoder().encode(text))).toEqual(decode(text))
  })

  it("fails with invalid_json, never throws, on bytes that are not JSON", () => {
    for (const input of ["", "{", "not json", new Uint8Array([0xff, 0xfe])]) {
      expect(failureOf(decodeJson(Timer)(input)).error_code).toBe("invalid_json")
    }
  })

  it("names the field of JSON that has the wrong shape", () => {
    const error = failureOf(decodeJson(Timer)(JSON.stringify({ ...timer, timer: "later" })))
    expect(error).toMatchObject({ error_code: "invalid_field", field: "timer" })
    expect(failureOf(decodeJson(Timer)("null")).error_code).toBe("invalid_request")
  })
})
