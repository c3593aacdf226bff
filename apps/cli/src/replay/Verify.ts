/**
 * `replay --verify`: every stored history through the current machine. A session fails when a
 * message does not decode, an event does not fold, or the compiled fold (`foldEvent`) and XState's
 * own `transition` (`applyEvent`) disagree — the check that the fast path still is the machine.
 */
import { isDeepStrictEqual } from "node:util"
import {
  applyEvent,
  type EventStore,
  foldEvent,
  initialState,
  type SessionState,
  UnappliableEvent,
  UnreadableEvent,
} from "@capture/session-actor"
import type { ReplayFailure } from "./Replay.js"
import { unappliableReason } from "./Replay.js"

/** A session whose history this code cannot reproduce. */
export interface VerifyFailure extends ReplayFailure {
  readonly session_id: string
}

/** The outcome of a verification run. */
export interface VerifyReport {
  readonly verified: number
  readonly failed: number
  /** Events folded across every session. */
  readonly events: number
  readonly failures: ReadonlyArray<VerifyFailure>
}

/** Replays one session both ways; returns its event count, or the first failure. */
export const verifySession = async (
  events: EventStore,
  sessionId: string,
): Promise<{ readonly events: number; readonly failure: ReplayFailure | null }> => {
  let folded: SessionState = initialState
  let stepped: SessionState = initialState
  let count = 0
  try {
    for await (const stored of events.read(sessionId)) {
      const event = stored.event
      const at = { sequence: event.sequence, stream_sequence: stored.streamSequence }
      try {
        const before = folded
        folded = foldEvent(folded, event)
        ;[stepped] = applyEvent(stepped, event)
        if (!isDeepStrictEqual(folded, stepped)) {
          return {
            events: count,
            failure: {
              ...at,
              reason:
                `compiled fold and XState transition disagree after ${event.type} in state ${before.value}: ` +
                `fold gives ${folded.value}, transition gives ${stepped.value}` +
                (folded.value === stepped.value ? " (contexts differ)" : ""),
            },
          }
        }
      } catch (cause) {
        if (!(cause instanceof UnappliableEvent)) throw cause
        return {
          events: count,
          failure: { ...at, reason: unappliableReason(folded, event.sequence, event.type) },
        }
      }
      count++
    }
  } catch (cause) {
    if (!(cause instanceof UnreadableEvent)) throw cause
    return {
      events: count,
      failure: { sequence: null, stream_sequence: cause.streamSequence, reason: cause.reason },
    }
  }
  return { events: count, failure: null }
}

/** Verifies every session with at least one stored message; `onFailure` sees failures as found. */
export const verifyAll = async (
  events: EventStore,
  onFailure: (failure: VerifyFailure) => void = () => {},
): Promise<VerifyReport> => {
  const failures: Array<VerifyFailure> = []
  let total = 0
  const ids = await events.sessionIds()
  for (const sessionId of ids) {
    const outcome = await verifySession(events, sessionId)
    total += outcome.events
    if (outcome.failure !== null) {
      const failure = { session_id: sessionId, ...outcome.failure }
      failures.push(failure)
      onFailure(failure)
    }
  }
  return { verified: ids.length, failed: failures.length, events: total, failures }
}
