/**
 * Time from a command's answer to the moment its event is seen elsewhere (a WebSocket, a
 * consumer), matched by a key both sides can name (session id + event name).
 */

/** Delays (ms) from answers to their events, with what did not arrive or arrived first. */
export interface EventDelaySamples {
  readonly delays: ReadonlyArray<number>
  /** Answers whose event was not seen. */
  readonly missing: number
  /** Events seen before their command's answer (their delay is negative). */
  readonly early: number
  /** Answers per second, from the first answer to the last. */
  readonly answeredPerSecond: number
  /** Matched events per second, from the first answer to the last event seen. */
  readonly seenPerSecond: number
}

export class EventDelays {
  private readonly answered = new Map<string, number>()
  private readonly seen = new Map<string, number>()
  private readonly delays: Array<number> = []
  private early = 0
  private answers = 0
  private firstAnswerAt = Number.POSITIVE_INFINITY
  private lastAnswerAt = 0
  private lastSeenAt = 0

  /** The command whose event is `key` was answered at `at` (performance.now()). */
  answer(key: string, at: number = performance.now()): void {
    this.answers++
    this.firstAnswerAt = Math.min(this.firstAnswerAt, at)
    this.lastAnswerAt = Math.max(this.lastAnswerAt, at)
    const seenAt = this.seen.get(key)
    if (seenAt === undefined) {
      this.answered.set(key, at)
      return
    }
    this.seen.delete(key)
    this.early++
    this.lastSeenAt = Math.max(this.lastSeenAt, seenAt, at)
    this.delays.push(seenAt - at)
  }

  /** The event `key` was seen at `at`; events nobody waits for are kept until they are. */
  see(key: string, at: number = performance.now()): void {
    const answeredAt = this.answered.get(key)
    if (answeredAt === undefined) {
      this.seen.set(key, at)
      return
    }
    this.answered.delete(key)
    this.lastSeenAt = Math.max(this.lastSeenAt, at)
    this.delays.push(at - answeredAt)
  }

  /** Waits up to `timeoutMs` for every answered command's event, then reports. */
  async settle(timeoutMs: number): Promise<EventDelaySamples> {
    const deadline = performance.now() + timeoutMs
    while (this.answered.size > 0 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const rate = (count: number, untilMs: number) =>
      untilMs > this.firstAnswerAt ? (count * 1000) / (untilMs - this.firstAnswerAt) : 0
    return {
      delays: [...this.delays],
      missing: this.answered.size,
      early: this.early,
      answeredPerSecond: rate(this.answers, this.lastAnswerAt),
      seenPerSecond: rate(this.delays.length, this.lastSeenAt),
    }
  }
}
