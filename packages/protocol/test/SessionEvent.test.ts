import { describe, expect, it } from "vitest"
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
  })
})
