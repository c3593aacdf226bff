/**
 * Waits for the processes this one started (servers under test, nats-server) to go quiet, so a
 * shape is not measured while the previous one's background work (projector, flushes) still runs.
 */
import { descendants, totalCpuMs } from "./processCpu.js"

/** How long the wait took, and whether the children went quiet before the timeout. */
export interface QuietWait {
  readonly waitedMs: number
  readonly quiet: boolean
}

/**
 * Resolves once this process's descendants together used at most `maxShare` of one core over a
 * window of `windowMs`, or after `timeoutMs`. Without /proc it returns at once.
 */
export const waitForQuietChildren = async (
  options: { readonly windowMs?: number; readonly maxShare?: number; readonly timeoutMs?: number } = {},
): Promise<QuietWait> => {
  const windowMs = options.windowMs ?? 300
  const maxShare = options.maxShare ?? 0.1
  const timeoutMs = options.timeoutMs ?? 10_000
  const started = performance.now()
  const children = descendants(process.pid)
  if (children.length === 0) return { waitedMs: 0, quiet: true }
  let before = totalCpuMs(children)
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, windowMs))
    const after = totalCpuMs(children)
    const waitedMs = performance.now() - started
    if (after - before <= maxShare * windowMs) return { waitedMs, quiet: true }
    if (waitedMs >= timeoutMs) return { waitedMs, quiet: false }
    before = after
  }
}
