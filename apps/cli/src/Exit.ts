/**
 * How the `capture` process ends: failures are values carrying the message to print and the exit
 * code, printed once at the top without a stack trace; a signal ends a server cleanly.
 */
import { Cause, Data, Exit as EffectExit, Runtime } from "effect"
import { CliError } from "effect/cli"

/** Exit codes a script can branch on. */
export const ExitCode = {
  /** A history the code cannot reproduce, a failed check. */
  failed: 1,
  /** Wrong usage or an unknown session. */
  usage: 2,
  /** NATS (or another dependency) unreachable or misbehaving. */
  unavailable: 3,
  /** `serve`: another running `capture serve` owns the data dir. */
  locked: 4,
} as const

/** A command failed for a reason its message explains; exits with `exitCode`. */
export class CommandError extends Data.TaggedError("CommandError")<{
  readonly message: string
  readonly exitCode: number
}> {
  override get [Runtime.errorExitCode](): number {
    return this.exitCode
  }
}

/** Shorthand constructors. */
export const failed = (message: string) => new CommandError({ message, exitCode: ExitCode.failed })
export const usage = (message: string) => new CommandError({ message, exitCode: ExitCode.usage })
export const unavailable = (message: string) => new CommandError({ message, exitCode: ExitCode.unavailable })

/** A thrown value as one line (the message, never the stack). */
export const describe = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error)
  if (error.message !== "") return error.message
  // Wrappers such as effect's ServeError carry the reason in `cause` only.
  return error.cause === undefined ? error.name : describe(error.cause)
}

/**
 * Prints why the program failed, once, without a stack trace. Parse errors and help were already
 * rendered by effect/cli.
 */
export const report = (cause: Cause.Cause<unknown>): void => {
  if (Cause.hasInterruptsOnly(cause)) return
  const error = Cause.squash(cause)
  if (CliError.isCliError(error)) return
  process.stderr.write(`capture: ${describe(error)}\n`)
}

// A signal is how an operator stops `serve`, so for it a signal means success; a one-shot command
// (say `replay --verify` in a script) interrupted half-way must not look like it passed.
let interruptExitCode = 130

/** Declares that being stopped by SIGTERM/SIGINT is this command's normal end (exit 0). */
export const stopsOnSignal = (): void => {
  interruptExitCode = 0
}

/** The process exit code for the main fiber's exit (see `NodeRuntime.runMain`'s `teardown`). */
export const teardown: Runtime.Teardown = (exit, onExit) => {
  if (EffectExit.isFailure(exit)) {
    if (Cause.hasInterruptsOnly(exit.cause)) return onExit(interruptExitCode)
    // effect/cli ends a parse failure (missing argument, unknown flag) with help and exit 1.
    if (isWrongUsage(Cause.squash(exit.cause))) return onExit(ExitCode.usage)
  }
  Runtime.defaultTeardown(exit, onExit)
}

/** Help shown because the command line did not parse (not because `--help` asked for it). */
const isWrongUsage = (error: unknown): boolean =>
  CliError.isCliError(error) && (error._tag !== "ShowHelp" || error.errors.length > 0)
