/**
 * A session's history: each stored event folded with the compiled fold (`foldEvent`, never
 * re-deciding), with the state after it. `capture replay` prints it and the gateway serves it
 * (`GET /collection/{cid}/capture/session/{id}/history`). A history this code cannot reproduce
 * stops at the message at fault and says why.
 */
import { type EventStore, UnreadableEvent } from "./EventStore.js"
import { foldEvent } from "./SessionFold.js"
import {
  initialState,
  type SessionContext,
  type SessionState,
  type SessionStateValue,
  UnappliableEvent,
} from "./SessionMachine.js"

/** A state as shown: the status and the context. */
export interface StateView {
  readonly status: SessionStateValue
  readonly context: SessionContext
}

/** One event and the state after it. */
export interface ReplayStep {
  readonly sequence: number
  readonly stream_sequence: number
  readonly time: string
  readonly type: string
  readonly data: unknown
  readonly state: StateView
}

/** Where and why a history could not be replayed. */
export interface ReplayFailure {
  /** The per-session sequence, when the message could be decoded. */
  readonly sequence: number | null
  readonly stream_sequence: number
  readonly reason: string
}

/** A replay: the steps taken, the state reached and, if it stopped early, why. */
export interface ReplayResult {
  readonly session_id: string
  readonly events: ReadonlyArray<ReplayStep>
  readonly final: StateView & { readonly sequence: number; readonly stream_sequence: number }
  readonly error: ReplayFailure | null
}

/** Why `foldEvent` refused: a hole or repeat in the sequence, or no transition for the event. */
export const unappliableReason = (state: SessionState, sequence: number, type: string): string =>
  sequence !== state.context.sequence + 1
    ? `expected event #${state.context.sequence + 1}, found #${sequence} (a gap or a repeat in the history)`
    : `${type} cannot be applied in state ${state.value}`

const view = (state: SessionState): StateView => ({ status: state.value, context: state.context })

/**
 * Folds `sessionId`'s events, stopping after sequence `until` when given. `onStep` sees each step
 * as it happens (so a long history prints as it goes). Errors other than an unreadable message or
 * an unappliable event (NATS trouble) are thrown.
 */
export const replaySession = async (
  events: EventStore,
  sessionId: string,
  options: { readonly until?: number; readonly onStep?: (step: ReplayStep) => void } = {},
): Promise<ReplayResult> => {
  const steps: Array<ReplayStep> = []
  let state = initialState
  let streamSequence = 0
  let error: ReplayFailure | null = null
  try {
    for await (const stored of events.read(sessionId)) {
      const event = stored.event
      try {
        state = foldEvent(state, event)
      } catch (cause) {
        if (!(cause instanceof UnappliableEvent)) throw cause
        error = {
          sequence: event.sequence,
          stream_sequence: stored.streamSequence,
          reason: unappliableReason(state, event.sequence, event.type),
        }
        break
      }
      streamSequence = stored.streamSequence
      const step: ReplayStep = {
        sequence: event.sequence,
        stream_sequence: stored.streamSequence,
        time: event.time,
        type: event.type,
        data: event.data,
        state: view(state),
      }
      steps.push(step)
      options.onStep?.(step)
      // Stop at `until` itself: a message after it (even an unreadable one) is not asked for.
      if (options.until !== undefined && event.sequence >= options.until) break
    }
  } catch (cause) {
    if (!(cause instanceof UnreadableEvent)) throw cause
    error = { sequence: null, stream_sequence: cause.streamSequence, reason: cause.reason }
  }
  return {
    session_id: sessionId,
    events: steps,
    final: { ...view(state), sequence: state.context.sequence, stream_sequence: streamSequence },
    error,
  }
}
