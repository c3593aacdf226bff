/** Session commands for tests: each call gets a fresh command id. */
import {
  type ChannelInput,
  DEFAULT_COLLECTION,
  newCommandId,
  type SessionCommand,
  type SessionId,
} from "@capture/protocol"
import type { SessionRuntime } from "@capture/session-actor"
import { Result } from "effect"

const command = (type: SessionCommand["type"], session_id: SessionId, payload: object): SessionCommand =>
  ({ type, command_id: newCommandId(), session_id, ...payload }) as unknown as SessionCommand

const channels: ReadonlyArray<ChannelInput> = [{ channel_id: "mic:default" }, { channel_id: "display:1" }]

export const create = (id: SessionId) =>
  command("CreateSession", id, { collection_id: DEFAULT_COLLECTION, end_user_id: "user-1" })
export const start = (id: SessionId) => command("StartSession", id, { channels })
export const media = (id: SessionId) => command("ReportMediaReceived", id, { channel_id: "mic:default" })
export const stop = (id: SessionId) => command("StopSession", id, {})
export const finish = (id: SessionId) => command("FinishStopping", id, {})
/** Stops or starts the session's rtstream of its `index`th channel (`rts-<session body>-NN`). */
export const rtstream = (id: SessionId, action: "stop" | "start", index = 0) =>
  command(action === "stop" ? "StopRtstream" : "StartRtstream", id, {
    rtstream_id: `rts-${id.slice("cap-".length)}-${String(index).padStart(2, "0")}`,
  })

/** Runs commands in order, failing the test on the first refusal. */
export const run = async (
  runtime: SessionRuntime,
  ...commands: ReadonlyArray<SessionCommand>
): Promise<void> => {
  for (const c of commands) {
    const outcome = await runtime.host.execute(c)
    if (Result.isFailure(outcome)) throw new Error(`${c.type}: ${outcome.failure.message}`)
  }
}
