import { Result } from "effect"
import { describe, expect, it } from "vitest"
import { decodeUnknown } from "../src/Decode.js"
import { LIFECYCLE_EVENT_NAMES, LifecycleEvent, lifecycleEventName } from "../src/LifecycleEvent.js"
import { checkRoundTrip } from "./roundTrip.js"

const active = {
  id: "evt-01JC0000000000000000000000",
  event: "capture_session.active",
  capture_session_id: "cap-xxx",
  end_user_id: "user_abc",
  status: "active",
  timestamp: "2026-01-20T12:34:56Z",
  data: {
    rtstreams: [
      { rtstream_id: "rts-1", name: "mic:default", media_types: ["audio"] },
      { rtstream_id: "rts-3", name: "display:1", media_types: ["video"] },
    ],
  },
}

describe("LifecycleEvent", () => {
  it("round-trips every lifecycle event", async () => {
    const seen = await checkRoundTrip(LifecycleEvent)
    expect(new Set(seen.map((event) => event.event))).toEqual(new Set(LIFECYCLE_EVENT_NAMES))
  })

  it("decodes the reference's active event", () => {
    expect(Result.isSuccess(decodeUnknown(LifecycleEvent)(active))).toBe(true)
  })

  it("refuses an event whose status or data does not match its name", () => {
    expect(Result.isFailure(decodeUnknown(LifecycleEvent)({ ...active, status: "stopped" }))).toBe(true)
    expect(
      Result.isFailure(decodeUnknown(LifecycleEvent)({ ...active, event: "capture_session.failed" })),
    ).toBe(true)
    expect(Result.isFailure(decodeUnknown(LifecycleEvent)({ ...active, timestamp: "yesterday" }))).toBe(true)
  })

  it("decodes an exported event with or without the raw assets' ids", () => {
    const exported = {
      ...active,
      event: "capture_session.exported",
      status: "exported",
      data: {
        exported_video_id: "m-xxx",
        stream_url: "https://capture.example.com/media/m-xxx/index.m3u8",
        player_url: "https://capture.example.com/player/m-xxx",
        video_channel_id: "display:1",
      },
    }
    expect(Result.isSuccess(decodeUnknown(LifecycleEvent)(exported))).toBe(true)
    const withAssets = {
      ...exported,
      data: { ...exported.data, exported_asset_ids: { "display:1": "m-yyy", "mic:default": "a-zzz" } },
    }
    expect(Result.isSuccess(decodeUnknown(LifecycleEvent)(withAssets))).toBe(true)
    const audioAsVideo = {
      ...exported,
      data: { ...exported.data, exported_asset_ids: { "mic:default": "rts-1" } },
    }
    expect(Result.isFailure(decodeUnknown(LifecycleEvent)(audioAsVideo))).toBe(true)
  })

  it("names the event for a status", () => {
    expect(lifecycleEventName("exported")).toBe("capture_session.exported")
  })
})
