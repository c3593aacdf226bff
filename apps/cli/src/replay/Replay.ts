/**
 * Printing one session's history (`replaySession` in the session actor folds it): each step as
 * lines, with the context fields that changed.
 */
import { isDeepStrictEqual } from "node:util"
import type { ReplayFailure, ReplayStep, SessionContext } from "@capture/session-actor"

export {
  type ReplayFailure,
  type ReplayResult,
  type ReplayStep,
  replaySession,
  type StateView,
  unappliableReason,
} from "@capture/session-actor"

const isEmpty = (value: unknown): boolean =>
  value === null ||
  value === "" ||
  (Array.isArray(value) && value.length === 0) ||
  (typeof value === "object" && value !== null && Object.keys(value).length === 0)

// Always different after an event, so not worth repeating on every line.
const stamped = new Set(["sequence", "updated_at"])

/**
 * The context fields worth reading after a step: those that changed since `previous` (all those
 * set, for the first event), nulls and empties dropped unless they were just cleared.
 */
export const interestingContext = (
  context: SessionContext,
  previous: SessionContext | undefined,
): Record<string, unknown> =>
  Object.fromEntries(
    Object.entries(context).filter(([key, value]) => {
      if (stamped.has(key)) return false
      if (previous === undefined) return !isEmpty(value)
      return !isDeepStrictEqual(value, previous[key as keyof SessionContext])
    }),
  )

/** A step as human-readable lines; `previous` is the context before it. */
export const formatStep = (step: ReplayStep, previous: SessionContext | undefined): string =>
  [
    `#${step.sequence}  ${step.time}  ${step.type}  (stream message ${step.stream_sequence})`,
    `    data   ${JSON.stringify(step.data)}`,
    `    state  ${step.state.status}  ${JSON.stringify(interestingContext(step.state.context, previous))}`,
  ].join("\n")

/** Where a failure sits, for a one-line message. */
export const formatFailure = (failure: ReplayFailure): string =>
  failure.sequence === null
    ? `stream message ${failure.stream_sequence}: ${failure.reason}`
    : `event #${failure.sequence} (stream message ${failure.stream_sequence}): ${failure.reason}`
