import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import { CaptureSession, RtstreamView } from "../src/CaptureSession.js"
import { checkRoundTrip } from "./roundTrip.js"

describe("CaptureSession", () => {
  it("round-trips", async () => {
    const seen = await checkRoundTrip(CaptureSession, 100)
    expect(new Set(seen.map((session) => session.status)).size).toBe(7)
    const assets = seen.flatMap((session) => session.rtstreams.map((r) => r.exported_asset_id))
    expect(assets).toContain(null)
    expect(assets.some((id) => id?.startsWith("m-"))).toBe(true)
    expect(assets.some((id) => id?.startsWith("a-"))).toBe(true)
    const statuses = new Set(seen.flatMap((session) => session.rtstreams.map((r) => r.status)))
    expect(statuses).toEqual(new Set(["connected", "stopped"]))
  })

  it("shows an rtstream with the fields VideoDB's SDK reads, and only the two statuses it knows", () => {
    const rtstream = {
      rtstream_id: "rts-01JC0000000000000000000001",
      name: "mic:default",
      channel_id: "mic",
      media_types: ["audio"],
      collection_id: "default",
      status: "connected",
      created_at: "2025-01-01T00:00:00.000Z",
      exported_asset_id: null,
    }
    const decode = Schema.decodeUnknownSync(RtstreamView)
    expect(decode(rtstream)).toEqual(rtstream)
    expect(decode({ ...rtstream, status: "stopped" }).status).toBe("stopped")
    expect(() => decode({ ...rtstream, status: "active" })).toThrow(/status/)
    // The category VideoDB's SDK matches (`getRTStream("mic")`), never the capture channel's id.
    expect(() => decode({ ...rtstream, channel_id: "mic:default" })).toThrow(/channel_id/)
    const { status: _, ...withoutStatus } = rtstream
    expect(() => decode(withoutStatus)).toThrow(/status/)
  })
})
