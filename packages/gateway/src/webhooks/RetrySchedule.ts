/**
 * When a failed webhook is tried again: a list of delays, one per retry, so a delivery gets
 * `schedule.length + 1` attempts in all. Each delay is spread by a random jitter so receivers
 * coming back after an outage are not hit by every retry in the same second.
 */
import { Data, Result } from "effect"

/** Environment variable holding the schedule, e.g. `5s,5m,30m,2h,5h,10h`. */
export const SCHEDULE_ENV = "CAPTURE_WEBHOOK_SCHEDULE"

/** Environment variable holding how long webhook records are kept after their last write, e.g. `7d`. */
export const RETENTION_ENV = "CAPTURE_WEBHOOK_RETENTION"

/** Delays in milliseconds before the 2nd, 3rd, … attempt. */
export type RetrySchedule = ReadonlyArray<number>

/** 5 s, 5 min, 30 min, 2 h, 5 h, 10 h: seven attempts over about 18 hours. */
export const defaultRetrySchedule: RetrySchedule = [
  5_000,
  5 * 60_000,
  30 * 60_000,
  2 * 3_600_000,
  5 * 3_600_000,
  10 * 3_600_000,
]

/** Default jitter: each delay is moved by up to ±10 %. */
export const defaultJitter = 0.1

/** A schedule text that does not parse. */
export class InvalidRetrySchedule extends Data.TaggedError("InvalidRetrySchedule")<{
  readonly input: string
  readonly message: string
}> {}

const units: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/**
 * Parses a comma-separated list of durations (`ms`, `s`, `m`, `h`, `d`; decimals allowed).
 *
 * @example parseRetrySchedule("5s,5m,30m,2h,5h,10h") // Success([5000, 300000, …])
 */
export const parseRetrySchedule = (input: string): Result.Result<RetrySchedule, InvalidRetrySchedule> => {
  const delays: Array<number> = []
  const parts = input.split(",").map((part) => part.trim())
  if (input.trim() === "") return Result.succeed([])
  for (const part of parts) {
    const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/i.exec(part)
    const unit = match?.[2]?.toLowerCase()
    if (match === null || unit === undefined) {
      return Result.fail(
        new InvalidRetrySchedule({
          input,
          message: `${SCHEDULE_ENV}: "${part}" is not a duration like 500ms, 5s, 5m, 2h or 1d`,
        }),
      )
    }
    delays.push(Math.round(Number(match[1]) * (units[unit] ?? 1)))
  }
  return Result.succeed(delays)
}

/** The schedule `CAPTURE_WEBHOOK_SCHEDULE` describes, or the default when it is unset. */
export const retryScheduleFromEnv = (
  env: NodeJS.ProcessEnv = process.env,
): Result.Result<RetrySchedule, InvalidRetrySchedule> => {
  const text = env[SCHEDULE_ENV]
  return text === undefined || text.trim() === ""
    ? Result.succeed(defaultRetrySchedule)
    : parseRetrySchedule(text)
}

/**
 * Parses the retention of webhook records (one duration, as in the schedule). It must outlast the
 * schedule's longest delay with its jitter, or a lane waiting for a retry would expire meanwhile.
 */
export const parseRetention = (
  input: string,
  schedule: RetrySchedule = defaultRetrySchedule,
): Result.Result<number, InvalidRetrySchedule> => {
  const parsed = parseRetrySchedule(input)
  if (Result.isFailure(parsed)) {
    return Result.fail(
      new InvalidRetrySchedule({
        input,
        message: parsed.failure.message.replace(SCHEDULE_ENV, RETENTION_ENV),
      }),
    )
  }
  const [retention, ...more] = parsed.success
  if (retention === undefined || more.length > 0) {
    return Result.fail(
      new InvalidRetrySchedule({ input, message: `${RETENTION_ENV}: one duration, like 7d` }),
    )
  }
  const longest = Math.max(0, ...schedule) * (1 + defaultJitter)
  if (retention <= longest) {
    return Result.fail(
      new InvalidRetrySchedule({
        input,
        message: `${RETENTION_ENV}: ${input} does not outlast the longest retry delay (${Math.round(longest)} ms with jitter)`,
      }),
    )
  }
  return Result.succeed(retention)
}

/** The delay before the attempt after `attemptsMade` failed ones; undefined when none is left. */
export const retryDelay = (schedule: RetrySchedule, attemptsMade: number): number | undefined =>
  attemptsMade >= 1 ? schedule[attemptsMade - 1] : undefined

/** `delayMs` moved by a uniform random fraction in [-jitter, +jitter] (jitter clamped to [0, 1]). */
export const withJitter = (delayMs: number, jitter: number, random: () => number = Math.random): number => {
  const spread = Math.min(Math.max(jitter, 0), 1)
  return Math.max(0, Math.round(delayMs * (1 + spread * (2 * random() - 1))))
}
