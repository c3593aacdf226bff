import type { Channel, ChannelId } from "@capture/protocol"
import { describe, expect, it } from "vitest"
import { automaticExport, type ChannelPause, mainExportChannel, pausedSpans } from "../src/index.js"

const channel = (channel_id: string, store = true): Channel => ({
  channel_id: channel_id as ChannelId,
  name: channel_id,
  type: channel_id.startsWith("display") ? "video" : "audio",
  store,
  is_primary: false,
})
const pause = (channel_id: string, from_ms: number, to_ms: number | null): ChannelPause => ({
  channel_id: channel_id as ChannelId,
  from_ms,
  to_ms,
})

describe("ExportPolicy", () => {
  it("exports the primary display when stored, else the first stored display, else audio only", () => {
    const channels = [channel("mic:default"), channel("display:1", false), channel("display:2")]
    expect(mainExportChannel(channels, "display:1" as ChannelId)).toBe("display:2")
    expect(mainExportChannel(channels, "display:2" as ChannelId)).toBe("display:2")
    expect(mainExportChannel([channel("mic:default")], null)).toBeNull()
  })

  it("makes no automatic export for an aborted stop or a session that stores nothing", () => {
    const channels = [channel("mic:default"), channel("display:1")]
    expect(automaticExport(channels, null, "aborted")).toBeUndefined()
    expect(automaticExport([channel("display:1", false)], null, "requested")).toBeUndefined()
    expect(automaticExport(channels, null, "recorder_silent")).toBe("display:1")
  })

  it("leaves out only the spans when every stored channel was paused", () => {
    const channels = [channel("mic:default"), channel("display:1"), channel("system_audio:default", false)]
    expect(
      pausedSpans(channels, [
        pause("mic:default", 1_000, 5_000),
        pause("display:1", 2_000, 4_000),
        pause("display:1", 4_500, 6_000),
        // A channel that is not stored does not hold anything back.
        pause("system_audio:default", 0, 10_000),
      ]),
    ).toEqual([
      { start_ms: 2_000, end_ms: 4_000 },
      { start_ms: 4_500, end_ms: 5_000 },
    ])
  })

  it("joins touching spans and keeps a pause still open at the stop open", () => {
    const channels = [channel("mic:default"), channel("display:1")]
    expect(
      pausedSpans(channels, [
        pause("mic:default", 1_000, 3_000),
        pause("mic:default", 3_000, null),
        pause("display:1", 2_000, null),
      ]),
    ).toEqual([{ start_ms: 2_000, end_ms: null }])
    expect(pausedSpans(channels, [pause("mic:default", 1_000, null)])).toEqual([])
  })
})
