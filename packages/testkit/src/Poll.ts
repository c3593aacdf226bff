/** Waits until `probe` returns a value accepted by `done` (for set-up hooks, where expect.poll is not allowed). */
export const waitFor = async <A>(
  probe: () => Promise<A>,
  done: (value: A) => boolean,
  { timeoutMs = 10_000, intervalMs = 50 } = {},
): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (done(value)) return value
    if (Date.now() > deadline)
      throw new Error(`condition not met within ${timeoutMs} ms (last: ${JSON.stringify(value)})`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}
