import { Result } from "effect"
import { describe, expect, it } from "vitest"
import {
  defaultRetrySchedule,
  parseRetention,
  parseRetrySchedule,
  retryDelay,
  retryScheduleFromEnv,
  withJitter,
} from "../../src/webhooks/RetrySchedule.js"

describe("RetrySchedule", () => {
  it("parses the default schedule's text into the default schedule", () => {
    expect(Result.getOrThrow(parseRetrySchedule("5s,5m,30m,2h,5h,10h"))).toEqual(defaultRetrySchedule)
  })

  it("reads milliseconds, decimals, spaces and days", () => {
    expect(Result.getOrThrow(parseRetrySchedule(" 250ms, 1.5s ,1d"))).toEqual([250, 1_500, 86_400_000])
    expect(Result.getOrThrow(parseRetrySchedule(""))).toEqual([])
  })

  it.each(["5", "5x", "-1s", "5s,,5m", "five seconds"])("refuses %j", (text) => {
    const parsed = parseRetrySchedule(text)
    expect(Result.isFailure(parsed) && parsed.failure._tag).toBe("InvalidRetrySchedule")
  })

  it("comes from CAPTURE_WEBHOOK_SCHEDULE, or is the default", () => {
    expect(Result.getOrThrow(retryScheduleFromEnv({ CAPTURE_WEBHOOK_SCHEDULE: "1s,2s" }))).toEqual([
      1_000, 2_000,
    ])
    expect(Result.getOrThrow(retryScheduleFromEnv({}))).toEqual(defaultRetrySchedule)
  })

  it("gives the delay after each failed attempt until the schedule runs out", () => {
    const schedule = [100, 200]
    expect([0, 1, 2, 3].map((made) => retryDelay(schedule, made))).toEqual([undefined, 100, 200, undefined])
  })

  it("spreads a delay by at most the jitter fraction", () => {
    expect(withJitter(1_000, 0.2, () => 0)).toBe(800)
    expect(withJitter(1_000, 0.2, () => 0.5)).toBe(1_000)
    expect(withJitter(1_000, 0.2, () => 1)).toBe(1_200)
    expect(withJitter(1_000, 0)).toBe(1_000)
    for (let i = 0; i < 100; i++) {
      const delay = withJitter(5_000, 0.1)
      expect(delay).toBeGreaterThanOrEqual(4_500)
      expect(delay).toBeLessThanOrEqual(5_500)
    }
  })

  it("parses a retention that outlasts the longest retry delay, and refuses one that does not", () => {
    expect(Result.getOrThrow(parseRetention("7d"))).toBe(7 * 86_400_000)
    expect(Result.getOrThrow(parseRetention("2m", [1_000, 60_000]))).toBe(120_000)
    const refused = (text: string, schedule?: ReadonlyArray<number>) => {
      const parsed = parseRetention(text, schedule)
      return Result.isFailure(parsed) ? parsed.failure.message : undefined
    }
    // The default schedule waits 10 h (up to 11 h with jitter) before its last attempt.
    expect(refused("10h")).toMatch(/^CAPTURE_WEBHOOK_RETENTION: 10h does not outlast the longest retry delay/)
    expect(refused("1d,2d")).toBe("CAPTURE_WEBHOOK_RETENTION: one duration, like 7d")
    expect(refused("a week")).toMatch(/^CAPTURE_WEBHOOK_RETENTION: "a week" is not a duration/)
  })
})
