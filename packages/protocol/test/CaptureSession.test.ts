import { describe, expect, it } from "vitest"
import { CaptureSession } from "../src/CaptureSession.js"
import { checkRoundTrip } from "./roundTrip.js"

describe("CaptureSession", () => {
  it("round-trips", async () => {
    const seen = await checkRoundTrip(CaptureSession, 100)
    expect(new Set(seen.map((session) => session.status)).size).toBe(7)
    const assets = seen.flatMap((session) => session.rtstreams.map((r) => r.exported_asset_id))
    expect(assets).toContain(null)
    expect(assets.some((id) => id?.startsWith("m-"))).toBe(true)
    expect(assets.some((id) => id?.startsWith("a-"))).toBe(true)
  })
})
