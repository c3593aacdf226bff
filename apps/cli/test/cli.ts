/** Runs the built `capture` command as a real process, as an operator or a supervisor would. */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

export const MAIN = fileURLToPath(new URL("../dist/main.js", import.meta.url))

const requireBuild = (): void => {
  if (!existsSync(MAIN)) {
    throw new Error(`${MAIN} is missing: build the CLI first (pnpm exec tsc -b apps/cli, or pnpm run build)`)
  }
}

/** The environment for a child: ours without NATS_URL, plus `env`. */
const childEnv = (env: Record<string, string>): NodeJS.ProcessEnv => {
  const { NATS_URL: _ignored, ...rest } = process.env
  // Suites follow `[capture] …` lines; Log.test reads the JSON a pipe gets by default.
  return { ...rest, CAPTURE_LOG_FORMAT: "pretty", ...env }
}

export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `capture <args>` to completion. */
export const runCli = (args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<CliResult> => {
  requireBuild()
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      env: childEnv(env),
      stdio: ["ignore", "pipe", "pipe"],
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8")
    })
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
    })
    child.once("error", reject)
    child.once("close", (code) => resolve({ code, stdout, stderr }))
  })
}

/** A running `capture <command>`. */
export interface CliProcess {
  readonly child: ChildProcess
  /** Everything it printed so far (stdout and stderr). */
  readonly output: () => string
  /** Resolves with the first output match of `pattern`; rejects if it exits or `timeoutMs` passes first. */
  readonly waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>
  /** Resolves with the exit code (or signal) once it has exited. */
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

/** A running `capture serve`. */
export type ServeProcess = CliProcess

/**
 * Starts `capture <args>` and keeps its output. `ownGroup`: in a process group of its own (as a
 * shell or a supervisor starts it), so a test can signal the whole group with `kill(-pid)`.
 */
export const startCli = (
  args: ReadonlyArray<string>,
  env: Record<string, string> = {},
  options: { readonly ownGroup?: boolean } = {},
): CliProcess => {
  requireBuild()
  const child = spawn(process.execPath, [MAIN, ...args], {
    env: childEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
    detached: options.ownGroup === true,
  })
  const name = args[0] ?? "capture"
  let output = ""
  const waiters = new Set<() => void>()
  const onData = (chunk: Buffer): void => {
    output += chunk.toString("utf8")
    for (const waiter of waiters) waiter()
  }
  child.stdout?.on("data", onData)
  child.stderr?.on("data", onData)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      for (const waiter of waiters) waiter()
      resolve({ code, signal })
    }),
  )
  const waitFor = (pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const match = output.match(pattern)
        if (match !== null) {
          cleanup()
          resolve(match)
        } else if (child.exitCode !== null || child.signalCode !== null) {
          cleanup()
          reject(new Error(`${name} exited before printing ${pattern}:\n${output}`))
        }
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(new Error(`${name} did not print ${pattern} within ${timeoutMs} ms:\n${output}`))
      }, timeoutMs)
      const cleanup = (): void => {
        clearTimeout(timer)
        waiters.delete(check)
      }
      waiters.add(check)
      check()
    })
  return { child, output: () => output, waitFor, exited }
}

/** Starts `capture serve <args>`. */
export const startServe = (
  args: ReadonlyArray<string>,
  env: Record<string, string> = {},
  options: { readonly ownGroup?: boolean } = {},
): ServeProcess => startCli(["serve", ...args], env, options)

/** True while `pid` is a live process (a zombie, dead but not yet reaped, counts as gone). */
export const isAlive = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // Fields after the parenthesised command name: state first.
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z"
  } catch {
    if (process.platform === "linux") return false
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }
}

/** Polls until `pid` is gone; false if it is still alive after `timeoutMs`. */
export const waitUntilGone = async (pid: number, timeoutMs = 10_000): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return !isAlive(pid)
}

/** Kills a process still running at the end of a test (afterEach/afterAll). */
export const killIfRunning = async (running: CliProcess | undefined): Promise<void> => {
  if (running === undefined || running.child.exitCode !== null || running.child.signalCode !== null) return
  running.child.kill("SIGKILL")
  await running.exited
}
