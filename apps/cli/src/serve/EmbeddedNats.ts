/**
 * The embedded NATS server: a `nats-server` child process with JetStream, listening on 127.0.0.1,
 * storing under `<data-dir>/nats`, started with `serve` and stopped with it.
 *
 * It must never outlive `serve`, even when `serve` is SIGKILLed and no handler runs. nats-server has
 * no parent-death option, so on Linux it is spawned through `setpriv --pdeathsig KILL` (util-linux,
 * present on every Debian): setpriv sets the kernel's parent-death signal and execs the server, so
 * the child's pid is the server's. Elsewhere a tiny detached watchdog (`node -e`) polls this process
 * and kills the server once it is gone.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { accessSync, constants, mkdirSync } from "node:fs"
import { createServer } from "node:net"
import { delimiter, join, resolve } from "node:path"
import { Data, Effect, type Scope } from "effect"
import { log } from "../Log.js"

/** The conventional NATS client port, used unless it is taken. */
export const DEFAULT_NATS_PORT = 4222
const LOOPBACK = "127.0.0.1"
const READY_LINE = "Server is ready"
const START_TIMEOUT_MS = 30_000
const STOP_GRACE_MS = 10_000

/** The embedded server could not be started. */
export class EmbeddedNatsError extends Data.TaggedError("EmbeddedNatsError")<{ readonly message: string }> {}

/** A running embedded server. */
export interface EmbeddedNats {
  readonly url: string
  readonly pid: number
  readonly storeDir: string
}

export interface EmbeddedNatsOptions {
  readonly dataDir: string
  /** A port asked for explicitly must be free; the default port falls back to a free one. */
  readonly port: number | undefined
}

const isExecutable = (path: string): boolean => {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

const findOnPath = (name: string): string | undefined =>
  (process.env.PATH ?? "")
    .split(delimiter)
    .filter((dir) => dir !== "")
    .map((dir) => join(dir, name))
    .find(isExecutable)

/** The nats-server binary: `NATS_SERVER_BIN`, else PATH, else Debian's /usr/sbin/nats-server. */
export const resolveNatsServerBinary = (): string => {
  const fromEnv = process.env.NATS_SERVER_BIN
  if (fromEnv !== undefined && fromEnv !== "") {
    if (!isExecutable(fromEnv)) {
      throw new EmbeddedNatsError({ message: `NATS_SERVER_BIN=${fromEnv} is not an executable file` })
    }
    return fromEnv
  }
  const found =
    findOnPath("nats-server") ?? (isExecutable("/usr/sbin/nats-server") ? "/usr/sbin/nats-server" : undefined)
  if (found === undefined) {
    throw new EmbeddedNatsError({
      message:
        "nats-server not found: install it (apt-get install nats-server), set NATS_SERVER_BIN, " +
        "or point NATS_URL at a running server",
    })
  }
  return found
}

/** Resolves with the port once bound and released, or rejects when it is taken. */
const probePort = (port: number): Promise<number> =>
  new Promise((resolvePort, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(port, LOOPBACK, () => {
      const address = server.address()
      const bound = typeof address === "object" && address !== null ? address.port : port
      server.close(() => resolvePort(bound))
    })
  })

const choosePort = async (asked: number | undefined): Promise<number> => {
  if (asked !== undefined) {
    return probePort(asked).catch((error) => {
      throw new EmbeddedNatsError({ message: `--nats-port ${asked} is not available: ${String(error)}` })
    })
  }
  try {
    return await probePort(DEFAULT_NATS_PORT)
  } catch {
    const port = await probePort(0)
    log(`nats port ${DEFAULT_NATS_PORT} is busy; embedded nats-server uses ${port} instead`)
    return port
  }
}

const WATCHDOG = `
const [parent, child] = process.argv.slice(1).map(Number)
const alive = (pid) => { try { process.kill(pid, 0); return true } catch { return false } }
setInterval(() => {
  if (!alive(child)) process.exit(0)
  if (!alive(parent)) { try { process.kill(child, "SIGKILL") } catch {} process.exit(0) }
}, 500)
`

const spawnTiedToParent = (bin: string, args: ReadonlyArray<string>): ChildProcess => {
  const setpriv = process.platform === "linux" ? findOnPath("setpriv") : undefined
  if (setpriv !== undefined) {
    return spawn(setpriv, ["--pdeathsig", "KILL", "--", bin, ...args], { stdio: ["ignore", "pipe", "pipe"] })
  }
  const child = spawn(bin, [...args], { stdio: ["ignore", "pipe", "pipe"] })
  if (child.pid !== undefined) {
    spawn(process.execPath, ["-e", WATCHDOG, String(process.pid), String(child.pid)], {
      detached: true,
      stdio: "ignore",
    }).unref()
  }
  return child
}

/** Starts the server and resolves once it logs that it accepts clients; rejects (killing it) otherwise. */
const start = async (
  options: EmbeddedNatsOptions,
): Promise<{ readonly nats: EmbeddedNats; readonly child: ChildProcess }> => {
  const bin = resolveNatsServerBinary()
  const storeDir = resolve(options.dataDir, "nats")
  mkdirSync(storeDir, { recursive: true })
  const port = await choosePort(options.port)
  const args = ["-js", "-sd", storeDir, "-a", LOOPBACK, "-p", String(port), "-n", "capture-embedded"]
  const child = spawnTiedToParent(bin, args)
  const tail: Array<string> = []
  const outcome = await new Promise<"ready" | string>((settle) => {
    const timer = setTimeout(() => settle(`not ready after ${START_TIMEOUT_MS / 1000} s`), START_TIMEOUT_MS)
    let partial = ""
    const onData = (chunk: Buffer): void => {
      const lines = (partial + chunk.toString("utf8")).split("\n")
      partial = lines.pop() ?? ""
      for (const line of lines) {
        tail.push(line)
        if (tail.length > 30) tail.shift()
        if (line.includes(READY_LINE)) {
          clearTimeout(timer)
          settle("ready")
        }
        // After start-up only trouble is worth relaying; the server's own log is verbose.
        else if (/\[(ERR|WRN|FTL)\]/.test(line)) log(`nats-server: ${line.replace(/^\[\d+\]\s*/, "")}`)
      }
    }
    child.stdout?.on("data", onData)
    child.stderr?.on("data", onData)
    child.once("error", (error) => {
      clearTimeout(timer)
      settle(`cannot run ${bin}: ${error.message}`)
    })
    child.once("exit", (code, signal) => {
      clearTimeout(timer)
      settle(`exited during start-up (${signal ?? `code ${code}`})`)
    })
  })
  if (outcome !== "ready" || child.pid === undefined) {
    child.kill("SIGKILL")
    throw new EmbeddedNatsError({
      message: `embedded nats-server ${outcome} (${bin} ${args.join(" ")})\n${tail.join("\n")}`,
    })
  }
  child.once("exit", (code, signal) => {
    if (!stopping.has(child)) log(`embedded nats-server exited unexpectedly (${signal ?? `code ${code}`})`)
  })
  return { nats: { url: `nats://${LOOPBACK}:${port}`, pid: child.pid, storeDir }, child }
}

const stopping = new WeakSet<ChildProcess>()

/** SIGTERM (JetStream flushes its store), then SIGKILL if it lingers. */
const stop = (child: ChildProcess): Promise<void> =>
  new Promise((done) => {
    stopping.add(child)
    if (child.exitCode !== null || child.signalCode !== null) return done()
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS)
    child.once("exit", () => {
      clearTimeout(timer)
      done()
    })
    child.kill("SIGTERM")
  })

/** The embedded server for the enclosing scope: started now, stopped when the scope closes. */
export const embeddedNats = (
  options: EmbeddedNatsOptions,
): Effect.Effect<EmbeddedNats, EmbeddedNatsError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => start(options),
      catch: (error) =>
        error instanceof EmbeddedNatsError ? error : new EmbeddedNatsError({ message: String(error) }),
    }),
    ({ child }) =>
      Effect.gen(function* () {
        log(`stopping embedded nats-server (pid ${child.pid})`)
        yield* Effect.promise(() => stop(child))
        log("embedded nats-server stopped")
      }),
  ).pipe(Effect.map(({ nats }) => nats))
