/** Latency samples summarised as percentiles, printed beside a baseline's. */

/** Percentiles (ms) of a set of latency samples. */
export interface LatencyFigure {
  readonly name: string
  readonly samples: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
}

const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0)

/** Summarises `samples` (ms) under `name`. */
export const latencyFigure = (name: string, samples: ReadonlyArray<number>): LatencyFigure => {
  const sorted = [...samples].sort((a, b) => a - b)
  return {
    name,
    samples: sorted.length,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted[sorted.length - 1] ?? 0,
  }
}

/** Prints latency figures as a table, each with its p50 and p99 as multiples of `baseline`'s. */
export const printLatencyTable = (
  title: string,
  rows: ReadonlyArray<{ figure: LatencyFigure; baseline?: LatencyFigure }>,
): void => {
  // A ratio of a zero or negative figure (an event seen before its answer) says nothing.
  const ratio = (a: number, b: number | undefined) =>
    b === undefined || a <= 0 || b <= 0 ? "" : `${(a / b).toFixed(2)}x`
  console.log(`\n${title}`)
  console.log(
    `${"".padEnd(54)}${"samples".padStart(8)}${"p50 ms".padStart(9)}${"p99 ms".padStart(9)}${"max ms".padStart(9)}${"p50 vs base".padStart(13)}${"p99 vs base".padStart(13)}`,
  )
  for (const { figure, baseline } of rows) {
    console.log(
      `${figure.name.padEnd(54)}${String(figure.samples).padStart(8)}${figure.p50Ms.toFixed(2).padStart(9)}${figure.p99Ms.toFixed(2).padStart(9)}${figure.maxMs.toFixed(1).padStart(9)}${ratio(figure.p50Ms, baseline?.p50Ms).padStart(13)}${ratio(figure.p99Ms, baseline?.p99Ms).padStart(13)}`,
    )
  }
}
