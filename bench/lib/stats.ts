/** Small measurement helpers shared by the benchmarks. */
import { mkdirSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

/** A throughput figure with latency percentiles (ms). */
export interface Figure {
  readonly name: string
  readonly operations: number
  readonly seconds: number
  readonly perSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
}

const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0)

/** Runs `count` operations with at most `concurrency` in flight, timing each. */
export const measure = async (
  name: string,
  count: number,
  concurrency: number,
  operation: (i: number) => Promise<unknown>,
): Promise<Figure> => {
  const latencies: Array<number> = new Array(count)
  let next = 0
  const started = performance.now()
  const worker = async () => {
    for (;;) {
      const i = next++
      if (i >= count) return
      const t0 = performance.now()
      await operation(i)
      latencies[i] = performance.now() - t0
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
  const seconds = (performance.now() - started) / 1000
  const sorted = [...latencies].sort((a, b) => a - b)
  return {
    name,
    operations: count,
    seconds,
    perSecond: count / seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
  }
}

/** Prints figures as a table, each with its ratio to `baseline`. */
export const printTable = (
  title: string,
  rows: ReadonlyArray<{ figure: Figure; baseline?: Figure }>,
): void => {
  console.log(`\n${title}`)
  console.log(
    `${"".padEnd(54)}${"ops".padStart(8)}${"ops/s".padStart(11)}${"p50 ms".padStart(9)}${"p99 ms".padStart(9)}${"vs baseline".padStart(13)}`,
  )
  for (const { figure, baseline } of rows) {
    const ratio = baseline === undefined ? "" : `${(figure.perSecond / baseline.perSecond).toFixed(2)}x`
    console.log(
      `${figure.name.padEnd(54)}${String(figure.operations).padStart(8)}${figure.perSecond.toFixed(0).padStart(11)}${figure.p50Ms.toFixed(2).padStart(9)}${figure.p99Ms.toFixed(2).padStart(9)}${ratio.padStart(13)}`,
    )
  }
}

/** Writes a result document to bench/results/<name>-<timestamp>.json and returns its path. */
export const writeResults = (name: string, document: unknown): string => {
  const dir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "results")
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, "-")}.json`)
  writeFileSync(file, `${JSON.stringify(document, null, 2)}\n`)
  return file
}
