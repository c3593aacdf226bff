/**
 * `replay --verify`: every stored history through the current machine, twice: with the compiled
 * transition the host runs (`applyEvent`) and with XState's own interpreter
 * (`transitionWithXState`), the machine's reference semantics. A session fails when a message does
 * not decode, an event does not fold, or the two disagree on the state or the effects after an
 * event: the check that the fast path still is the machine.
 */
import { isDeepStrictEqual } from "node:util"
import type { SessionEvent } from "@capture/protocol"
import {
  applyEvent,
  type EventStore,
  initialState,
  type SessionEffect,
  type SessionState,
  transitionWithXState,
  UnappliableEvent,
  UnreadableEvent,
} from "@capture/session-actor"
import type { ReplayFailure } from "./Replay.js"
import { unappliableReason } from "./Replay.js"

/** One way of applying an event to a state: the next state and the effects to run. */
export type Transition = (
  state: SessionState,
  event: SessionEvent,
) => readonly [SessionState, ReadonlyArray<SessionEffect>]

/** The two transitions compared; tests swap one for a deliberately wrong one. */
export interface VerifyOptions {
  /** What the host runs (default `applyEvent`). */
  readonly compiled?: Transition
  /** What it must agree with (default `transitionWithXState`). */
  readonly reference?: Transition
}

/** A part of the outcome on which the two transitions disagree. */
export interface Difference {
  /** `value`, `context.<field>`, `effects`, or `accepted` (one applied the event, the other refused it). */
  readonly field: string
  readonly compiled: unknown
  readonly xstate: unknown
}

/** A history this code cannot reproduce; for a divergence, the event and what differs. */
export interface VerifyFailure extends ReplayFailure {
  readonly session_id: string
  readonly event_type?: string
  readonly differences?: ReadonlyArray<Difference>
}

/** The outcome of a verification run. */
export interface VerifyReport {
  readonly verified: number
  readonly failed: number
  /** Events folded across every session. */
  readonly events: number
  readonly failures: ReadonlyArray<VerifyFailure>
}

type Outcome =
  | { readonly applied: true; readonly state: SessionState; readonly effects: ReadonlyArray<SessionEffect> }
  | { readonly applied: false }

const attempt = (transition: Transition, state: SessionState, event: SessionEvent): Outcome => {
  try {
    const [next, effects] = transition(state, event)
    return { applied: true, state: next, effects }
  } catch (cause) {
    if (cause instanceof UnappliableEvent) return { applied: false }
    throw cause
  }
}

/** Where two applied outcomes differ: the status, each context field, the effects. */
const differences = (
  compiled: Extract<Outcome, { applied: true }>,
  xstate: Extract<Outcome, { applied: true }>,
): ReadonlyArray<Difference> => {
  const found: Array<Difference> = []
  if (compiled.state.value !== xstate.state.value) {
    found.push({ field: "value", compiled: compiled.state.value, xstate: xstate.state.value })
  }
  const a = compiled.state.context as unknown as Record<string, unknown>
  const b = xstate.state.context as unknown as Record<string, unknown>
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (!isDeepStrictEqual(a[key], b[key]))
      found.push({ field: `context.${key}`, compiled: a[key], xstate: b[key] })
  }
  if (!isDeepStrictEqual(compiled.effects, xstate.effects)) {
    found.push({ field: "effects", compiled: compiled.effects, xstate: xstate.effects })
  }
  return found
}

const shown = (value: unknown): string => {
  const text = JSON.stringify(value) ?? "undefined"
  return text.length > 120 ? `${text.slice(0, 117)}...` : text
}

const describeDifferences = (type: string, from: string, found: ReadonlyArray<Difference>): string =>
  `compiled transition and XState's interpreter disagree after ${type} in state ${from}: ` +
  found.map((d) => `${d.field}: compiled ${shown(d.compiled)}, xstate ${shown(d.xstate)}`).join("; ")

/** Replays one session both ways; returns its event count, or the first failure. */
export const verifySession = async (
  events: EventStore,
  sessionId: string,
  options: VerifyOptions = {},
): Promise<{ readonly events: number; readonly failure: Omit<VerifyFailure, "session_id"> | null }> => {
  const compiled = options.compiled ?? applyEvent
  const reference = options.reference ?? transitionWithXState
  let compiledState: SessionState = initialState
  let xstateState: SessionState = initialState
  let count = 0
  try {
    for await (const stored of events.read(sessionId)) {
      const event = stored.event
      const at = { sequence: event.sequence, stream_sequence: stored.streamSequence, event_type: event.type }
      const byCompiled = attempt(compiled, compiledState, event)
      const byXState = attempt(reference, xstateState, event)
      if (!byCompiled.applied && !byXState.applied) {
        return {
          events: count,
          failure: { ...at, reason: unappliableReason(compiledState, event.sequence, event.type) },
        }
      }
      const found =
        byCompiled.applied && byXState.applied
          ? differences(byCompiled, byXState)
          : [{ field: "accepted", compiled: byCompiled.applied, xstate: byXState.applied }]
      if (found.length > 0) {
        return {
          events: count,
          failure: {
            ...at,
            reason: describeDifferences(event.type, compiledState.value, found),
            differences: found,
          },
        }
      }
      if (byCompiled.applied && byXState.applied) {
        compiledState = byCompiled.state
        xstateState = byXState.state
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
  options: VerifyOptions = {},
): Promise<VerifyReport> => {
  const failures: Array<VerifyFailure> = []
  let total = 0
  const ids = await events.sessionIds()
  for (const sessionId of ids) {
    const outcome = await verifySession(events, sessionId, options)
    total += outcome.events
    if (outcome.failure !== null) {
      const failure = { session_id: sessionId, ...outcome.failure }
      failures.push(failure)
      onFailure(failure)
    }
  }
  return { verified: ids.length, failed: failures.length, events: total, failures }
}
