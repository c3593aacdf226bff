/**
 * Operational log lines: `[capture] …` on stdout, one per step, so a supervisor's log (or a test)
 * can follow start-up and shutdown.
 */
import { Effect } from "effect"

/** Writes one log line. */
export const log = (message: string): void => {
  process.stdout.write(`[capture] ${message}\n`)
}

/** `log` as an effect. */
export const logEffect = (message: string): Effect.Effect<void> => Effect.sync(() => log(message))
