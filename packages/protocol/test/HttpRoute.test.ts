import { describe, expect, expectTypeOf, it } from "vitest"
import { pathOf, type RouteParams } from "../src/HttpRoute.js"

describe("HttpRoute", () => {
  it("names a route's parameters, the trailing wildcard included", () => {
    expectTypeOf<RouteParams<"/capture/session/:session_id/stop">>().toEqualTypeOf<"session_id">()
    expectTypeOf<RouteParams<"/media/:video_id/*">>().toEqualTypeOf<"video_id" | "*">()
    expectTypeOf<RouteParams<"/capture/session/start">>().toEqualTypeOf<never>()
  })

  it("fills each parameter in, percent-encoded as one path segment", () => {
    expect(pathOf("/capture/session/:session_id/stop", { session_id: "cap-1" })).toBe(
      "/capture/session/cap-1/stop",
    )
    expect(pathOf("/a/:channel_id/:index", { channel_id: "mic:default", index: 3 })).toBe(
      "/a/mic%3Adefault/3",
    )
    // A value cannot reach another segment or add a query.
    expect(pathOf("/a/:id/b", { id: "x/../y?z#w" })).toBe("/a/x%2F..%2Fy%3Fz%23w/b")
    expect(pathOf("/capture/session/start", {})).toBe("/capture/session/start")
  })

  it("keeps the slashes of a wildcard value and encodes each of its segments", () => {
    expect(pathOf("/media/:video_id/*", { video_id: "m-1", "*": "raw/mic:default.m4a" })).toBe(
      "/media/m-1/raw/mic%3Adefault.m4a",
    )
  })
})
