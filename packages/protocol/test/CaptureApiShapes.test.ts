import { describe, expect, it } from "vitest"
import { RawAssetView, VideoView } from "../src/CaptureApiShapes.js"
import { checkRoundTrip } from "./roundTrip.js"

describe("export objects", () => {
  it("round-trips the video object", async () => {
    await checkRoundTrip(VideoView, 50)
  })

  it("round-trips the raw asset object, for video and audio assets", async () => {
    const seen = await checkRoundTrip(RawAssetView, 100)
    expect(new Set(seen.map((view) => view.id.slice(0, 2)))).toEqual(new Set(["m-", "a-"]))
  })
})
