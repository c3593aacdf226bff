/**
 * One nats-server child process: spawned with fixed arguments, so stopping and starting it again keeps its
 * ports and store directory (that is what makes restarts keep JetStream data). Readiness is the server's
 * own "Server is ready" log line; its log is drained continuously (a full pipe would block the server) and
 * the tail kept for error messages.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { accessSync, constants } from "node:fs"
import { delimiter, join } from "node:path"
import { onProcessExit } from "./Cleanup.js"

const READY_LINE = "Server is ready"
const START_TIMEOUT_MS = 30_000
const STOP_GRACE_MS = 5_000
const LOG_TAIL_LINES = 30

/** The nats-server binary: `NATS_SERVER_BIN`, else the first on PATH, else Debian's /usr/sbin/nats-server. */
export const resolveNatsServerBinary = (): string => {
  const fromEnv = process.env.NATS_SERVER_BIN
  if (fromEnv) {
    if (!isExecutable(fromEnv)) throw new Error(`NATS_SERVER_BIN=${fromEnv} is not an executable file`)
    return fromEnv
  }
  const found =
    findOnPath("nats-server") ?? (isExecutable("/usr/sbin/nats-server") ? "/usr/sbin/nats-server" : undefined)
  if (found === undefined) {
    throw new Error("nats-server not found: install it (apt-get install nats-server) or set NATS_SERVER_BIN")
  }
  return found
}

/**
 * On Linux, prefixes `setpriv --pdeathsig KILL` (util-linux) so the kernel kills the server when the test
 * process dies in a way no handler sees (vitest SIGKILLs workers that do not stop); setpriv execs the server,
 * so the child's pid is the server's.
 */
const withParentDeathSignal = (command: readonly string[]): readonly string[] => {
  setprivPath ??= process.platform === "linux" ? (findOnPath("setpriv") ?? null) : null
  return setprivPath === null ? command : [setprivPath, "--pdeathsig", "KILL", "--", ...command]
}
let setprivPath: string | null | undefined

const findOnPath = (name: string): string | undefined =>
  (process.env.PATH ?? "")
    .split(delimiter)
    .filter((dir) => dir !== "")
    .map((dir) => join(dir, name))
    .find(isExecutable)

const isExecutable = (path: string): boolean => {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** A nats-server child process that can be started and stopped any number of times. */
export class NatsProcess {
  private child: ChildProcess | undefined
  private exited: Promise<void> = Promise.resolve()
  private logTail: string[] = []

  constructor(
    readonly name: string,
    readonly bin: string,
    readonly args: readonly string[],
  ) {}

  get running(): boolean {
    return this.child !== undefined
  }

  /** The last lines the server logged, for error messages. */
  get recentLog(): string {
    return this.logTail.join("\n")
  }

  /** Spawns the server and resolves once it logs that it is ready; rejects (and kills it) otherwise. */
  async start(): Promise<void> {
    if (this.child !== undefined) return
    this.logTail = []
    const [command, ...args] = withParentDeathSignal([this.bin, ...this.args])
    const child = spawn(command ?? this.bin, args, { stdio: ["ignore", "pipe", "pipe"] })
    this.child = child
    // The test process may die without calling stop(); the server must not outlive it.
    const unregisterCleanup = onProcessExit(() => child.kill("SIGKILL"))
    this.exited = new Promise((resolve) => {
      const gone = (): void => {
        if (this.child === child) this.child = undefined
        unregisterCleanup()
        resolve()
      }
      child.once("exit", gone)
      // A binary that cannot be spawned reports 'error' and never 'exit'.
      child.once("error", (error) => {
        this.logTail.push(String(error))
        if (child.pid === undefined) gone()
      })
    })

    let markReady: () => void = () => {}
    const ready = new Promise<void>((resolve) => {
      markReady = resolve
    })
    let partial = ""
    const onData = (chunk: Buffer): void => {
      const lines = (partial + chunk.toString("utf8")).split("\n")
      partial = lines.pop() ?? ""
      for (const line of lines) {
        this.logTail.push(line)
        if (line.includes(READY_LINE)) markReady()
      }
      if (this.logTail.length > LOG_TAIL_LINES) this.logTail.splice(0, this.logTail.length - LOG_TAIL_LINES)
    }
    child.stdout?.on("data", onData)
    child.stderr?.on("data", onData)

    let timer: NodeJS.Timeout | undefined
    const outcome = await Promise.race([
      ready.then(() => "ready" as const),
      this.exited.then(() => "exited" as const),
      new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), START_TIMEOUT_MS)
      }),
    ])
    clearTimeout(timer)
    if (outcome === "ready") return
    await this.stop()
    throw new Error(
      `${this.name}: nats-server ${outcome === "timeout" ? "did not become ready" : "failed to start"}` +
        ` (${this.bin} ${this.args.join(" ")})\n${this.recentLog}`,
    )
  }

  /** Stops the server (SIGTERM, so it shuts JetStream down cleanly; SIGKILL if it lingers). */
  async stop(): Promise<void> {
    const child = this.child
    if (child === undefined) return
    child.kill("SIGTERM")
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS)
    await this.exited
    clearTimeout(timer)
  }
}
