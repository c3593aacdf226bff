import { describe, expect, it } from "vitest"
import { SessionCommand, type SessionCommandType } from "../src/SessionCommand.js"
import { checkRoundTrip } from "./roundTrip.js"

// `satisfies` makes a command added to the union without being listed here a compile error.
const COMMAND_TYPES = {
  CreateSession: true,
  StartSession: true,
  ReportMediaReceived: true,
  StopSession: true,
  FinishStopping: true,
  RequestExport: true,
  CompleteExport: true,
  FailExport: true,
  FailSession: true,
  FireTimer: true,
  PauseChannels: true,
  ResumeChannels: true,
  StopRtstream: true,
  StartRtstream: true,
} satisfies Record<SessionCommandType, true>

describe("SessionCommand", () => {
  it("lists exactly the union's members", () => {
    const members = SessionCommand.members.map((member) => member.fields.type.literal)
    expect([...members].sort()).toEqual(Object.keys(COMMAND_TYPES).sort())
  })

  it("round-trips every command type", async () => {
    const seen = await checkRoundTrip(SessionCommand)
    expect(new Set(seen.map((command) => command.type))).toEqual(new Set(Object.keys(COMMAND_TYPES)))
  })
})
