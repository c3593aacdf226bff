/**
 * A real JetStream-enabled NATS server for one integration suite: in a container when an engine is
 * reachable (testcontainers; podman via infra/podman/setup.sh, or Docker), else a nats-server child process.
 * Either way the server listens on 127.0.0.1 only, and restarts keep its port and its JetStream store.
 *
 *   const nats = await startNatsServer()   // in beforeAll
 *   const nc = await connect({ servers: nats.url })
 *   await nats.stop()                      // in afterAll
 *
 * `CAPTURE_TEST_NATS=process|container` forces a kind for the whole run (`container` fails rather than
 * falling back); `CAPTURE_TEST_NATS_IMAGE` overrides the container image.
 */

import { getFreePort, LOOPBACK } from "./FreePorts.js"
import {
  type ContainerEngine,
  detectContainerEngine,
  startNatsContainer,
} from "./internal/ContainerEngine.js"
import { natsProcess, resolveNatsServerBinary } from "./internal/NatsProcess.js"
import { makeTempDir } from "./internal/TempDir.js"

/** How the server runs: a testcontainers container, or a nats-server child process. */
export type NatsServerKind = "container" | "process"

export interface NatsServerOptions {
  /** Run the server this way, whatever `CAPTURE_TEST_NATS` says (e.g. to cover both paths in one run). */
  readonly kind?: NatsServerKind
}

export interface NatsServerHandle {
  /** Client URL, `nats://127.0.0.1:PORT`; stays the same across `restart()`. */
  readonly url: string
  readonly kind: NatsServerKind
  /** Stops the server and deletes its storage. Idempotent. */
  stop(): Promise<void>
  /** Stops and starts the server again on the same port with the same storage, so JetStream data survives. */
  restart(): Promise<void>
}

/** Starts a JetStream-enabled nats-server listening on 127.0.0.1, resolving once it is ready for clients. */
export const startNatsServer = async (options: NatsServerOptions = {}): Promise<NatsServerHandle> => {
  const kind = options.kind ?? kindFromEnv()
  if (kind === "process") return startProcess()

  const engine = await detectContainerEngine()
  if (engine instanceof Error) {
    if (kind === "container") throw new Error(`a NATS container is required, but: ${engine.message}`)
    return startProcess(`no usable container engine: ${firstLine(engine)}`)
  }
  try {
    return await startContainer(engine)
  } catch (error) {
    if (kind === "container") throw error
    // The engine answered but could not run the server; the suite can still run against a child process.
    return startProcess(`the container failed: ${firstLine(error)}`)
  }
}

const firstLine = (error: unknown): string =>
  (error instanceof Error ? error.message : String(error)).split("\n")[0] ?? ""

/** The kind forced by `CAPTURE_TEST_NATS`, or undefined for "container when possible". */
const kindFromEnv = (): NatsServerKind | undefined => {
  const value = process.env.CAPTURE_TEST_NATS
  if (value === undefined || value === "" || value === "auto") return undefined
  if (value === "process" || value === "container") return value
  throw new Error(`CAPTURE_TEST_NATS must be "process", "container" or unset, not "${value}"`)
}

const startContainer = async (engine: ContainerEngine): Promise<NatsServerHandle> => {
  const { port, value: container } = await onFreePort((port) => startNatsContainer(engine, port))
  const url = `nats://${LOOPBACK}:${port}`
  console.info(`[testkit] NATS via container ${engine.image} at ${url}`)
  return { url, kind: "container", stop: container.stop, restart: container.restart }
}

/** Starts a child process; `fallbackReason` says why a container was not used when one was wanted. */
const startProcess = async (fallbackReason?: string): Promise<NatsServerHandle> => {
  const bin = resolveNatsServerBinary()
  const storeDir = makeTempDir("server")
  try {
    const { port, value: server } = await onFreePort(async (port) => {
      const server = natsProcess(`nats-server :${port}`, bin, [
        "-js",
        "-a",
        LOOPBACK,
        "-p",
        String(port),
        "-sd",
        storeDir.path,
      ])
      await server.start()
      return server
    })
    const url = `nats://${LOOPBACK}:${port}`
    console.info(`[testkit] NATS via process ${bin} at ${url}${fallbackReason ? ` (${fallbackReason})` : ""}`)
    let stopped: Promise<void> | undefined
    return {
      url,
      kind: "process",
      stop: () => {
        stopped ??= server.stop().then(storeDir.remove)
        return stopped
      },
      restart: async () => {
        await server.stop()
        await server.start()
      },
    }
  } catch (error) {
    await storeDir.remove()
    throw error
  }
}

/**
 * Runs `start` on a free port, picking another if the port was taken between probing and binding (another
 * suite starting at the same moment).
 */
const onFreePort = async <A>(start: (port: number) => Promise<A>): Promise<{ port: number; value: A }> => {
  for (let attempt = 1; ; attempt++) {
    const port = await getFreePort()
    try {
      return { port, value: await start(port) }
    } catch (error) {
      if (attempt >= 3 || !/address already in use/i.test(String(error))) throw error
    }
  }
}
