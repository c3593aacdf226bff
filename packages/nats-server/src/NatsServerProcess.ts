/**
 * One nats-server child process, spawned with fixed arguments, so stopping and starting it again keeps
 * its ports and store directory (restarts keep JetStream data). Readiness is the server's own "Server is
 * ready" log line; its log is drained continuously (a full pipe would block the server) and the tail kept
 * for error messages.
 *
 * The server must never outlive its parent, even when the parent is SIGKILLed and no handler runs.
 * nats-server has no parent-death option, so on Linux it is spawned through `setpriv --pdeathsig KILL`
 * (util-linux, on every Debian): setpriv sets the kernel's parent-death signal and execs the server, so
 * the child's pid is the server's. Elsewhere a tiny detached watchdog (`node -e`) polls the parent and
 * kills the server once the parent is gone.
 *
 * Short of that, it stops only when its owner says so: it runs in a process group of its own, so a
 * signal to the owner's group (Ctrl-C in a terminal, a supervisor's SIGTERM to the group) reaches
 * the owner alone, which stops its clients while the server is still there, and then the server.
 */
import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process"
import { findOnPath, isExecutable } from "@capture/binaries"

const READY_LINE = "Server is ready"
const LOG_TAIL_LINES = 30

/** No nats-server binary could be found. */
export class NatsServerNotFound extends Error {}

/** The nats-server binary: `NATS_SERVER_BIN`, else the first on PATH, else Debian's /usr/sbin/nats-server. */
export const resolveNatsServerBinary = (): string => {
  const fromEnv = process.env.NATS_SERVER_BIN
  if (fromEnv) {
    if (!isExecutable(fromEnv))
      throw new NatsServerNotFound(`NATS_SERVER_BIN=${fromEnv} is not an executable file`)
    return fromEnv
  }
  const found =
    findOnPath("nats-server") ?? (isExecutable("/usr/sbin/nats-server") ? "/usr/sbin/nats-server" : undefined)
  if (found === undefined) {
    throw new NatsServerNotFound(
      "nats-server not found: install it (apt-get install nats-server) or set NATS_SERVER_BIN",
    )
  }
  return found
}

const WATCHDOG = `
const [parent, child] = process.argv.slice(1).map(Number)
const alive = (pid) => { try { process.kill(pid, 0); return true } catch { return false } }
setInterval(() => {
  if (!alive(child)) process.exit(0)
  if (!alive(parent)) { try { process.kill(child, "SIGKILL") } catch {} process.exit(0) }
}, 500)
`

let setprivPath: string | null | undefined

/**
 * Spawns `bin` in a process group of its own, so that it dies with this process but not with its
 * group (see the module comment). `inheritedFds` become the child's fds 3, 4, ….
 */
const spawnTiedToParent = (
  bin: string,
  args: ReadonlyArray<string>,
  inheritedFds: ReadonlyArray<number>,
): ChildProcess => {
  const options: SpawnOptions = { stdio: ["ignore", "pipe", "pipe", ...inheritedFds], detached: true }
  setprivPath ??= process.platform === "linux" ? (findOnPath("setpriv") ?? null) : null
  if (setprivPath !== null) return spawn(setprivPath, ["--pdeathsig", "KILL", "--", bin, ...args], options)
  const child = spawn(bin, [...args], options)
  if (child.pid !== undefined) {
    spawn(process.execPath, ["-e", WATCHDOG, String(process.pid), String(child.pid)], {
      detached: true,
      stdio: "ignore",
    }).unref()
  }
  return child
}

export interface NatsServerProcessOptions {
  /** Names the server in error messages. */
  readonly name: string
  readonly bin: string
  readonly args: ReadonlyArray<string>
  /** Called with each line the server logs. */
  readonly onLine?: (line: string) => void
  /**
   * Open files the server holds for as long as it runs (fds 3, 4, … in the server), e.g. the lock of
   * its store, so that the lock outlives its owner until the server, too, is gone.
   */
  readonly inheritedFds?: ReadonlyArray<number>
  /** Called once the child is spawned; the returned function runs when it exits (e.g. to unregister cleanup). */
  readonly onSpawn?: (child: ChildProcess) => () => void
  /** Called when the server exits without `stop()` having been asked. */
  readonly onUnexpectedExit?: (description: string) => void
  readonly startTimeoutMs?: number
  /** How long `stop()` waits after SIGTERM before SIGKILL. */
  readonly stopGraceMs?: number
}

const describeExit = (code: number | null, signal: NodeJS.Signals | null): string =>
  signal === null ? `code ${code}` : signal

/** A nats-server child process that can be started and stopped any number of times. */
export class NatsServerProcess {
  private child: ChildProcess | undefined
  private exited: Promise<void> = Promise.resolve()
  private stopping = false
  private logTail: Array<string> = []

  constructor(readonly options: NatsServerProcessOptions) {}

  get running(): boolean {
    return this.child !== undefined
  }

  /** The server's pid while it runs. */
  get pid(): number | undefined {
    return this.child?.pid
  }

  /** The last lines the server logged, for error messages. */
  get recentLog(): string {
    return this.logTail.join("\n")
  }

  /** Spawns the server and resolves once it logs that it is ready; rejects (and kills it) otherwise. */
  async start(): Promise<void> {
    if (this.child !== undefined) return
    const { bin, args, name } = this.options
    this.logTail = []
    this.stopping = false
    const child = spawnTiedToParent(bin, args, this.options.inheritedFds ?? [])
    this.child = child
    const afterExit = this.options.onSpawn?.(child)
    let exitDescription = ""
    this.exited = new Promise((resolve) => {
      const gone = (description: string): void => {
        if (this.child === child) this.child = undefined
        exitDescription = description
        afterExit?.()
        if (!this.stopping) this.options.onUnexpectedExit?.(description)
        resolve()
      }
      child.once("exit", (code, signal) => gone(`exited (${describeExit(code, signal)})`))
      // A binary that cannot be spawned reports 'error' and never 'exit'.
      child.once("error", (error) => {
        this.logTail.push(String(error))
        if (child.pid === undefined) gone(`cannot run ${bin}: ${error.message}`)
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
        this.options.onLine?.(line)
      }
      if (this.logTail.length > LOG_TAIL_LINES) this.logTail.splice(0, this.logTail.length - LOG_TAIL_LINES)
    }
    child.stdout?.on("data", onData)
    child.stderr?.on("data", onData)

    const startTimeoutMs = this.options.startTimeoutMs ?? 30_000
    let timer: NodeJS.Timeout | undefined
    const outcome = await Promise.race([
      ready.then(() => "ready" as const),
      this.exited.then(() => "exited" as const),
      new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), startTimeoutMs)
      }),
    ])
    clearTimeout(timer)
    if (outcome === "ready") return
    await this.stop()
    const reason =
      outcome === "timeout"
        ? `did not become ready within ${startTimeoutMs / 1000} s`
        : `${exitDescription} during start-up`
    throw new Error(`${name}: nats-server ${reason} (${bin} ${args.join(" ")})\n${this.recentLog}`)
  }

  /** Kills the server at once (SIGKILL: no clean JetStream shutdown, as in a crash) and waits until it is gone. */
  async kill(): Promise<void> {
    const child = this.child
    if (child === undefined) return
    this.stopping = true
    child.kill("SIGKILL")
    await this.exited
  }

  /** Stops the server (SIGTERM, so it shuts JetStream down cleanly; SIGKILL if it lingers). */
  async stop(): Promise<void> {
    const child = this.child
    if (child === undefined) return
    this.stopping = true
    child.kill("SIGTERM")
    const timer = setTimeout(() => child.kill("SIGKILL"), this.options.stopGraceMs ?? 5_000)
    await this.exited
    clearTimeout(timer)
  }
}
