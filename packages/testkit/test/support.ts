/**
 * Helpers shared by the testkit's own suites.
 */

/**
 * Retries `attempt` until it resolves, for outcomes that settle after a restart or failover (reconnects,
 * leader elections, replicas catching up); rethrows the last failure after `timeoutMs`.
 */
export const eventually = async <A>(
  attempt: () => Promise<A>,
  { timeoutMs = 30_000, intervalMs = 200 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await attempt()
    } catch (error) {
      if (Date.now() >= deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, intervalMs))
    }
  }
}
