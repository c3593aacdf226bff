import type { ChannelId, CollectionId, RtstreamId, SessionId } from "@capture/protocol"
import { Result } from "effect"
import { describe, expect, it } from "vitest"
import {
  decideTranscription,
  type EngineChoice,
  emptyRtstreamAi,
  foldAiEvent,
  queryTimeMs,
  resolveEngine,
  type TranscriptionTarget,
} from "../src/index.js"

const target = (channel_id: ChannelId): TranscriptionTarget => ({
  rtstream_id: "rts-01TEST" as RtstreamId,
  rtstream_name: channel_id,
  session_id: "cap-01TEST" as SessionId,
  channel_id,
  account_id: "acc",
  end_user_id: "user-1",
  collection_id: "default" as CollectionId,
})
const both: EngineChoice = { offered: ["local", "openai"], default: "local" }
const localOnly: EngineChoice = { offered: ["local"], default: "local" }

describe("transcription decisions", () => {
  it("maps engine names: default, VideoDB's assemblyai, offered ones; refuses the rest naming engine", () => {
    expect(resolveEngine(undefined, both)).toEqual(Result.succeed("local"))
    expect(resolveEngine("AssemblyAI", both)).toEqual(Result.succeed("local"))
    expect(resolveEngine("openai", both)).toEqual(Result.succeed("openai"))
    const notConfigured = resolveEngine("openai", localOnly)
    expect(Result.isFailure(notConfigured) && notConfigured.failure.field).toBe("engine")
    const unknown = resolveEngine("whisper-9000", both)
    expect(Result.isFailure(unknown) && unknown.failure.error_code).toBe("unknown_engine")
    const none = resolveEngine(undefined, { offered: [], default: "local" })
    expect(Result.isFailure(none) && none.failure.error_code).toBe("unknown_engine")
  })

  it("refuses a display rtstream, starts once, stops once", () => {
    const display = decideTranscription(
      emptyRtstreamAi("rts-01TEST"),
      target("display:1"),
      { action: "start" },
      both,
    )
    expect(Result.isFailure(display) && display.failure.error_code).toBe("rtstream_not_audio")
    let state = emptyRtstreamAi("rts-01TEST")
    const start = Result.getOrThrow(
      decideTranscription(state, target("mic:default"), { action: "start" }, both),
    )
    expect(start?.type).toBe("TranscriptionStarted")
    if (start === null) return
    state = foldAiEvent(state, start, 1)
    expect(state.transcription.status).toBe("active")
    expect(state.epoch).toBe(1)
    expect(
      Result.getOrThrow(decideTranscription(state, target("mic:default"), { action: "start" }, both)),
    ).toBeNull()
    // Another socket is a new start (routing changes), not a restart of the lane.
    const moved = Result.getOrThrow(
      decideTranscription(state, target("mic:default"), { action: "start", ws_connection_id: "ws-2" }, both),
    )
    expect(moved?.type).toBe("TranscriptionStarted")
    const stop = Result.getOrThrow(
      decideTranscription(state, target("mic:default"), { action: "stop" }, both),
    )
    expect(stop?.type === "TranscriptionStopped" && stop.data.mode).toBe("graceful")
    if (stop === null) return
    state = foldAiEvent(state, stop, 2)
    expect(
      Result.getOrThrow(decideTranscription(state, target("mic:default"), { action: "stop" }, both)),
    ).toBeNull()
  })

  it("reads query times in ms, or seconds when below 10^11", () => {
    expect(queryTimeMs(1_710_000_000)).toBe(1_710_000_000_000)
    expect(queryTimeMs(1_710_000_000_123)).toBe(1_710_000_000_123)
  })
})
