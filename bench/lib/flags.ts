/**
 * Command-line values of the benchmarks.
 */

/** `--name`'s value as a positive integer, `fallback` when absent; anything else stops the run. */
export const positiveInteger = (name: string, raw: string | undefined, fallback: number): number => {
  if (raw === undefined) return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value <= 0)
    throw new Error(`--${name} must be a positive integer, got "${raw}"`)
  return value
}
