/** Limits how many tasks run at once (ffmpeg processes on a small machine). */
export class Semaphore {
  private active = 0
  private readonly waiting: Array<() => void> = []

  constructor(private readonly limit: number) {}

  async run<A>(task: () => Promise<A>): Promise<A> {
    // A released slot passes straight to the next waiter, so the count never exceeds the limit.
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve))
    else this.active++
    try {
      return await task()
    } finally {
      const next = this.waiting.shift()
      if (next === undefined) this.active--
      else next()
    }
  }
}
