/**
 * Operational log lines on stdout, one per step, so a supervisor's log (or a test) can follow
 * start-up and shutdown. Two formats: `json` (one object per line: `time`, `level`, `message`,
 * and `session_id`, `account_id`, `request_id`, `role` where known), the default when stdout is
 * not a terminal, and `pretty` (`[capture] …`), the default on a terminal. No line carries a secret:
 * API keys, client tokens, webhook secrets and signed URL parameters are masked before writing.
 */
import { Effect } from "effect"

/** How lines are written. */
export type LogFormat = "json" | "pretty"

export const LOG_FORMATS: ReadonlyArray<LogFormat> = ["json", "pretty"]

/** How much a line matters. */
export type LogLevel = "debug" | "info" | "warn" | "error"

/** What a line is about, when the caller knows. */
export interface LogFields {
  readonly level?: LogLevel
  readonly session_id?: string
  readonly account_id?: string
  readonly request_id?: string
  readonly [field: string]: unknown
}

let format: LogFormat = process.stdout.isTTY === true ? "pretty" : "json"
/** Fields every line of this process carries (the role of `serve`). */
let processFields: Record<string, unknown> = {}

/** Chooses the format (`--log-format`) and the fields every line carries. */
export const configureLog = (options: {
  readonly format?: LogFormat | undefined
  readonly fields?: Record<string, unknown>
}): void => {
  if (options.format !== undefined) format = options.format
  if (options.fields !== undefined) processFields = { ...options.fields }
}

/** The format lines are written in now. */
export const logFormat = (): LogFormat => format

// Secrets as they are shaped (packages/protocol's ids, the gateway's credentials), and the query
// parameters that carry a credential or a signature.
const SECRET_PATTERNS: ReadonlyArray<readonly [RegExp, string]> = [
  [/\bsk-[A-Za-z0-9_-]{8,}/g, "sk-[redacted]"],
  [/\bst-[A-Za-z0-9_-]{8,}/g, "st-[redacted]"],
  [/\bwhsec_[A-Za-z0-9+/=_-]{8,}/g, "whsec_[redacted]"],
  [/([?&](?:token|sig|signature|access_token)=)[^&\s"]+/gi, "$1[redacted]"],
  [/(authorization|x-access-token)(["']?\s*[:=]\s*["']?)[^\s"',}]+/gi, "$1$2[redacted]"],
]

/** `text` with every credential in it masked. */
export const redact = (text: string): string =>
  SECRET_PATTERNS.reduce((masked, [pattern, replacement]) => masked.replace(pattern, replacement), text)

// Ids a message names, when its caller gave none (the packages log plain text naming them).
const SESSION_ID = /\bcap-[A-Za-z0-9_-]{10,64}/
const ACCOUNT_ID = /\bacct-[A-Za-z0-9_-]{10,64}/
// Messages of the packages that report something going wrong.
const WARNING = /\b(fail(?:s|ed|ing)?|cannot|could not|unreadable|error|refused|timed out|still stopping)\b/i

/** One JSON line: the given fields, then what the message names, never a secret. */
export const jsonLine = (message: string, fields: LogFields = {}, now: Date = new Date()): string => {
  const { level, ...rest } = fields
  const text = redact(message)
  const named: Record<string, unknown> = {}
  const session = SESSION_ID.exec(text)?.[0]
  if (rest.session_id === undefined && session !== undefined) named.session_id = session
  const account = ACCOUNT_ID.exec(text)?.[0]
  if (rest.account_id === undefined && account !== undefined) named.account_id = account
  const line = {
    time: now.toISOString(),
    level: level ?? (WARNING.test(text) ? "warn" : "info"),
    message: text,
    ...processFields,
    ...named,
    ...rest,
  }
  return redact(JSON.stringify(line))
}

// Lines written in one turn of the event loop go out in one write: a busy server logs a line per
// request, and stdout on a pipe writes synchronously, a system call each. On exit, what is left
// is written at once (still synchronously).
let pending: Array<string> = []
const flushLines = (): void => {
  if (pending.length === 0) return
  const text = pending.join("")
  pending = []
  process.stdout.write(text)
}
process.on("exit", flushLines)
const writeLine = (line: string): void => {
  if (pending.push(line) === 1) setImmediate(flushLines)
}

/** Writes one log line (with the others of this turn of the event loop). */
export const log = (message: string, fields?: LogFields): void => {
  writeLine(format === "json" ? `${jsonLine(message, fields)}\n` : `[capture] ${redact(message)}\n`)
}

/** A `pretty` line that carries a secret meant for the person at the terminal (the first API key). */
export const showOnce = (message: string): void => {
  writeLine(`[capture] ${message}\n`)
}

/** `log` as an effect. */
export const logEffect = (message: string, fields?: LogFields): Effect.Effect<void> =>
  Effect.sync(() => log(message, fields))
