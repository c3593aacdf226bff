/**
 * The embedded NATS server: a `nats-server` child process with JetStream, listening on 127.0.0.1,
 * storing under `<data-dir>/nats`, started with `serve` and stopped with it, last, once every client of
 * it has stopped. The process itself (finding the binary, dying with `serve` even on SIGKILL but not
 * with its process group, readiness, clean stop) is @capture/nats-server's.
 */
import { mkdirSync } from "node:fs"
import { createServer } from "node:net"
import { resolve } from "node:path"
import { NatsServerNotFound, NatsServerProcess, resolveNatsServerBinary } from "@capture/nats-server"
import { Data, Effect, type Scope } from "effect"
import { log } from "../Log.js"

/** The conventional NATS client port, used unless it is taken. */
export const DEFAULT_NATS_PORT = 4222
const LOOPBACK = "127.0.0.1"
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
  /** The data dir's locked file: the server holds it too, so the lock lasts until it is gone. */
  readonly lockFd: number | undefined
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

/** Starts the server and resolves once it accepts clients; rejects (killing it) otherwise. */
const start = async (
  options: EmbeddedNatsOptions,
): Promise<{ readonly nats: EmbeddedNats; readonly server: NatsServerProcess }> => {
  let bin: string
  try {
    bin = resolveNatsServerBinary()
  } catch (error) {
    if (!(error instanceof NatsServerNotFound)) throw error
    throw new EmbeddedNatsError({ message: `${error.message}, or point NATS_URL at a running server` })
  }
  const storeDir = resolve(options.dataDir, "nats")
  mkdirSync(storeDir, { recursive: true })
  const port = await choosePort(options.port)
  const server = new NatsServerProcess({
    name: "embedded",
    bin,
    args: ["-js", "-sd", storeDir, "-a", LOOPBACK, "-p", String(port), "-n", "capture-embedded"],
    stopGraceMs: STOP_GRACE_MS,
    inheritedFds: options.lockFd === undefined ? [] : [options.lockFd],
    // After start-up only trouble is worth relaying; the server's own log is verbose.
    onLine: (line) => {
      if (/\[(ERR|WRN|FTL)\]/.test(line)) log(`nats-server: ${line.replace(/^\[\d+\]\s*/, "")}`)
    },
    onUnexpectedExit: (description) => log(`embedded nats-server ${description} unexpectedly`),
  })
  try {
    await server.start()
  } catch (error) {
    throw new EmbeddedNatsError({ message: error instanceof Error ? error.message : String(error) })
  }
  return { nats: { url: `nats://${LOOPBACK}:${port}`, pid: server.pid ?? 0, storeDir }, server }
}

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
    ({ server }) =>
      Effect.gen(function* () {
        log(`stopping embedded nats-server (pid ${server.pid})`)
        yield* Effect.promise(() => server.stop())
        log("embedded nats-server stopped")
      }),
  ).pipe(Effect.map(({ nats }) => nats))
