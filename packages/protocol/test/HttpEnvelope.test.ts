import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import { captureError } from "../src/ErrorCode.js"
import { Failure, failureOf, HttpResponse, Success, successOf } from "../src/HttpEnvelope.js"

const Started = Schema.Struct({ session_id: Schema.String, status: Schema.Literal("starting") })

describe("HttpEnvelope", () => {
  it("wraps data in a success envelope", () => {
    const body = successOf({ session_id: "cap-1", status: "starting" as const })
    expect(Schema.decodeUnknownSync(Success(Started))(body)).toEqual({ success: true, data: body.data })
  })

  it("renders a CaptureError as a failure envelope with its field and status", () => {
    const error = captureError("invalid_transition", "session is stopped", { current_status: "stopped" })
    expect(failureOf(error)).toEqual({
      success: false,
      message: "session is stopped",
      error_code: "invalid_transition",
      current_status: "stopped",
    })
    expect(
      failureOf(captureError("missing_field", "end_user_id: Missing key", { field: "end_user_id" })),
    ).toMatchObject({ field: "end_user_id" })
  })

  it("lets a client decode either envelope", () => {
    const decode = Schema.decodeUnknownSync(HttpResponse(Started))
    expect(decode({ success: false, message: "nope", error_code: "not_found" })).toEqual({
      success: false,
      message: "nope",
      error_code: "not_found",
    })
    expect(() => decode({ success: false, message: "nope", error_code: "no_such_code" })).toThrow()
    expect(Schema.is(Failure)({ success: true, data: {} })).toBe(false)
  })
})
