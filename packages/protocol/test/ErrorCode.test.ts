import { describe, expect, it } from "vitest"
import { httpStatusOf } from "../src/ErrorCode.js"

describe("httpStatusOf", () => {
  it("maps codes to their HTTP status", () => {
    expect(httpStatusOf("missing_field")).toBe(400)
    expect(httpStatusOf("token_expired")).toBe(401)
    expect(httpStatusOf("session_not_found")).toBe(404)
    expect(httpStatusOf("invalid_transition")).toBe(409)
    expect(httpStatusOf("rate_limited")).toBe(429)
    expect(httpStatusOf("internal_error")).toBe(500)
  })
})
