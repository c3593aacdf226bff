/**
 * Retrying JetStream requests through what a cluster does to them for a moment: a leader
 * election, a node rejoining, a reconnect (`isTransient`).
 *
 * ```ts
 * const info = await retryTransient(() => jsm.streams.info("CAPTURE_EVENTS"))
 * ```
 */
import { isTransient } from "./JetStreamErrors.js"

/**
 * Runs a JetStream request, retrying transient failures with growing pauses (100 ms doubling to
 * 2 s) for up to `budgetMs`. Only for requests that are safe to repeat (reads, ephemeral consumer
 * creation): any other error, and the last transient one, is thrown.
 */
export const retryTransient = async <A>(request: () => Promise<A>, budgetMs = 20_000): Promise<A> => {
  const deadline = Date.now() + budgetMs
  for (let pause = 100; ; pause = Math.min(pause * 2, 2_000)) {
    try {
      return await request()
    } catch (error) {
      if (!isTransient(error) || Date.now() + pause > deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, pause))
    }
  }
}
