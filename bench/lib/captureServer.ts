/**
 * `capture serve` as a child process (apps/cli/dist/main.js), so the server under test has an
 * event loop and a process of its own and the client's CPU is not counted as the server's.
 */
import { spawn } from "node:child_process"
import { appendFileSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { getFreePort } from "@capture/testkit"

export interface CaptureServer {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string
  readonly pid: number
  /** SIGTERM, then SIGKILL if it has not exited within 10 s; removes its data directory. */
  readonly stop: () => Promise<void>
}

/**
 * bench/dist/lib → the repository root's CLI; `CAPTURE_BENCH_CLI=<main.js>` runs another build
 * (say a checkout of main), so a change is measured beside the code before it.
 */
const CLI =
  process.env.CAPTURE_BENCH_CLI ??
  join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "apps", "cli", "dist", "main.js")

/** The last lines the server wrote, for an error message. */
const tail = (lines: ReadonlyArray<string>) => lines.slice(-20).join("\n")

/**
 * Starts `capture serve` against `natsUrl` with `apiKey` seeded, resolving once the API answers.
 */
export const startCaptureServer = async (options: {
  readonly natsUrl: string
  readonly apiKey: string
  readonly readyTimeoutMs?: number
  /** More `capture serve` flags (`--role gateway`, …). */
  readonly args?: ReadonlyArray<string>
  /** Flags for node itself (`--cpu-prof`, which NODE_OPTIONS may not carry). */
  readonly nodeArgs?: ReadonlyArray<string>
  /** The path that answers 200 once it is ready (default `/openapi.json`; a role without the API: `/healthz`). */
  readonly readyPath?: string
  /** More environment (`CAPTURE_SILENCE_TIMEOUT_MS`, …) on top of this process's. */
  readonly env?: Readonly<Record<string, string>>
}): Promise<CaptureServer> => {
  const dataDir = mkdtempSync(join(tmpdir(), "capture-bench-"))
  const port = await getFreePort()
  const url = `http://127.0.0.1:${port}`
  const args = [
    // As `npm start` runs it (see docs/architecture.md, Performance).
    "--max-semi-space-size=32",
    ...(options.nodeArgs ?? []),
    ...[CLI, "serve", "--port", String(port), "--data-dir", dataDir],
    ...(options.args ?? []),
  ]
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...options.env, NATS_URL: options.natsUrl, CAPTURE_API_KEY: options.apiKey },
    stdio: ["ignore", "pipe", "pipe"],
  })
  const output: Array<string> = []
  // CAPTURE_BENCH_SERVER_LOG=<file> keeps everything the server writes, for looking into a run.
  const logFile = process.env.CAPTURE_BENCH_SERVER_LOG
  const keep = (chunk: Buffer) => {
    if (logFile !== undefined) appendFileSync(logFile, chunk)
    output.push(...chunk.toString("utf8").trimEnd().split("\n"))
    if (output.length > 200) output.splice(0, output.length - 200)
  }
  child.stdout.on("data", keep)
  child.stderr.on("data", keep)
  let exitCode: number | null | undefined
  const exited = new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      exitCode = code ?? (signal === null ? null : -1)
      resolve()
    }),
  )
  const stop = async () => {
    if (exitCode === undefined) {
      child.kill("SIGTERM")
      const killer = setTimeout(() => child.kill("SIGKILL"), 10_000)
      await exited
      clearTimeout(killer)
    }
    rmSync(dataDir, { recursive: true, force: true })
  }
  const deadline = Date.now() + (options.readyTimeoutMs ?? 120_000)
  for (;;) {
    if (exitCode !== undefined) {
      await stop()
      throw new Error(`capture serve exited (${exitCode}) before it was ready:\n${tail(output)}`)
    }
    try {
      const response = await fetch(`${url}${options.readyPath ?? "/openapi.json"}`, {
        signal: AbortSignal.timeout(500),
      })
      await response.body?.cancel()
      if (response.ok) break
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`capture serve did not answer on ${url}:\n${tail(output)}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  if (child.pid === undefined) throw new Error("capture serve has no pid")
  return { url, pid: child.pid, stop }
}
