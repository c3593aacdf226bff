/**
 * Folding a session's history: the compiled machine's transitions, as the host runs them for each
 * new event and as replay runs them over a stored history. `transitionWithXState` in
 * `SessionMachine.ts` is the reference these must agree with.
 */
import type { SessionEvent } from "@capture/protocol"
import { match, reduce } from "./internal/compiledMachine.js"
import { initialState, type SessionEffect, type SessionState } from "./SessionMachine.js"

const noEffects: ReadonlyArray<SessionEffect> = []

/**
 * Applies one event and returns the next state with the effects to run (timers): the machine's
 * pure transition, as the host runs it for each new event. Throws `UnappliableEvent` when the
 * machine does not accept the event, or when it is not the next in sequence: a history that does
 * not fold is corrupt, never silently skipped.
 */
export const applyEvent = (
  state: SessionState,
  event: SessionEvent,
): readonly [SessionState, ReadonlyArray<SessionEffect>] => {
  const candidate = match(state, event)
  const next = reduce(state, event, candidate)
  if (candidate.effects.length === 0) return [next, noEffects]
  const effects = candidate.effects.map(
    ({ type, params }) =>
      ({
        type,
        ...(typeof params === "function" ? params({ context: next.context, event }) : params),
      }) as SessionEffect,
  )
  return [next, effects]
}

/** One fold step without effects (replay). */
export const foldEvent = (state: SessionState, event: SessionEvent): SessionState =>
  reduce(state, event, match(state, event))

/** Folds a history (or a tail onto a snapshot's state). */
export const foldEvents = (
  events: Iterable<SessionEvent>,
  from: SessionState = initialState,
): SessionState => {
  let state = from
  for (const event of events) state = foldEvent(state, event)
  return state
}
