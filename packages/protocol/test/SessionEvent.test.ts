import { Result } from "effect"
import { describe, expect, it } from "vitest"
import { decodeUnknown } from "../src/Decode.js"
import { SESSION_EVENT_TYPES, SessionEvent } from "../src/SessionEvent.js"
import { checkRoundTrip } from "./roundTrip.js"

describe("SessionEvent", () => {
  it("SESSION_EVENT_TYPES lists exactly the union's members", () => {
    const members = SessionEvent.members.map((member) => member.fields.type.literal)
    expect([...members].sort()).toEqual([...SESSION_EVENT_TYPES].sort())
  })

  it("round-trips every event type", async () => {
    const seen = await checkRoundTrip(SessionEvent)
    expect(new Set(seen.map((event) => event.type))).toEqual(new Set(SESSION_EVENT_TYPES))
    const completions = seen.filter((event) => event.type === "ExportCompleted")
    expect(new Set(completions.map((event) => "asset_ids" in event.data))).toEqual(new Set([true, false]))
  })

  // As stored by schema version 1 before raw assets had ids: it must still decode (and replay).
  const storedCompletion = {
    type: "ExportCompleted",
    id: "evt-01JC0000000000000000000000",
    session_id: "cap-01JC0000000000000000000000",
    sequence: 7,
    time: "2026-01-20T12:34:56.000Z",
    schema_version: 1,
    command_id: "mux-done-m-01JC0000000000000000000000",
    data: {
      video_channel_id: "display:1",
      video_id: "m-01JC0000000000000000000000",
      stream_url: "https://capture.example.com/media/m-01JC0000000000000000000000/index.m3u8",
      player_url: "https://capture.example.com/player/m-01JC0000000000000000000000",
    },
  }

  it("decodes an ExportCompleted stored without asset ids", () => {
    const decoded = decodeUnknown(SessionEvent)(storedCompletion)
    expect(Result.isSuccess(decoded) && decoded.success.data).toEqual(storedCompletion.data)
  })

  it("decodes an ExportCompleted with asset ids, and refuses a malformed one", () => {
    const asset_ids = {
      "display:1": "m-01JC0000ABCDEFGHJKMNPQRSTV",
      "mic:default": "a-01JC0000ABCDEFGHJKMNPQRSTV",
    }
    const decoded = decodeUnknown(SessionEvent)({
      ...storedCompletion,
      data: { ...storedCompletion.data, asset_ids },
    })
    expect(Result.isSuccess(decoded) && decoded.success.data).toMatchObject({ asset_ids })
    const wrong = {
      ...storedCompletion,
      data: { ...storedCompletion.data, asset_ids: { "mic:default": "rts-1" } },
    }
    expect(Result.isFailure(decodeUnknown(SessionEvent)(wrong))).toBe(true)
  })
})
