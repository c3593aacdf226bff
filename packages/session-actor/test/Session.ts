/** A session run in memory the way the host runs it, for tests of the pure parts. */
import type { CaptureError, SessionCommand, SessionEvent } from "@capture/protocol"
import { Result } from "effect"
import {
  applyEvent,
  type DecideOptions,
  decide,
  initialState,
  type SessionState,
  toEvent,
} from "../src/index.js"

export const options: DecideOptions = { startTimeoutMs: 5_000, stopTimeoutMs: 3_000 }
export const now = new Date("2026-01-01T00:00:00.000Z")

/** Runs commands like the host does (decide → envelope → transition) and keeps the history. */
export class Session {
  state: SessionState = initialState
  readonly history: Array<SessionEvent> = []
  readonly effects: Array<unknown> = []

  run(command: SessionCommand): Result.Result<SessionEvent | null, CaptureError> {
    const decision = decide(this.state, command, now, options)
    if (Result.isFailure(decision)) return Result.fail(decision.failure)
    if (decision.success === null) return Result.succeed(null)
    const event = toEvent(this.state, command, decision.success, now)
    const [next, effects] = applyEvent(this.state, event)
    this.state = next
    this.history.push(event)
    this.effects.push(...effects)
    return Result.succeed(event)
  }

  ok(command: SessionCommand): SessionEvent | null {
    const result = this.run(command)
    if (Result.isFailure(result)) throw new Error(`${command.type} refused: ${result.failure.message}`)
    return result.success
  }

  refused(command: SessionCommand): CaptureError {
    const result = this.run(command)
    if (Result.isSuccess(result)) throw new Error(`${command.type} was accepted`)
    return result.failure
  }
}
