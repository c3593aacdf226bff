/**
 * Finding a container engine for testcontainers, and running nats-server in it. testcontainers' own runtime
 * detection decides reachability (it honours DOCKER_HOST); the one thing added here is podman: when
 * DOCKER_HOST is unset and infra/podman/setup.sh's rootful socket exists, the process is pointed at it. Ryuk
 * (testcontainers' reaper) needs an image from a registry, which is not reachable there, so it is disabled
 * and containers are removed by `stop()`, failing that by the process-exit cleanup, and failing that (the
 * process was SIGKILLed) by the next test process, which removes containers whose owner process is gone.
 */
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { hostname } from "node:os"
import {
  type ContainerRuntimeClient,
  GenericContainer,
  getContainerRuntimeClient,
  ImageName,
  type StartedTestContainer,
  Wait,
} from "testcontainers"
import { LOOPBACK } from "../FreePorts.js"
import { isProcessAlive, onProcessExit } from "./Cleanup.js"

/** The rootful podman API socket infra/podman/setup.sh starts. */
export const PODMAN_SOCKET = "/run/podman/podman.sock"
/** The image infra/podman/setup.sh builds from the host's nats-server (no registry is reachable there). */
export const PODMAN_IMAGE = "localhost/capture-nats:latest"
/** The image used with a real Docker engine. */
export const DOCKER_IMAGE = "nats:2.10-alpine"

const NATS_PORT = 4222
/** Label naming the process that started a container (`host/pid`), for removing orphans. */
const OWNER_LABEL = "capture.testkit.owner"

/** A reachable engine, and the nats image to run on it. */
export interface ContainerEngine {
  readonly image: string
  /** Socket of the engine's API, when it is a local unix socket (for the synchronous exit cleanup). */
  readonly socketPath: string | undefined
}

let detected: Promise<ContainerEngine | Error> | undefined

/**
 * The container engine for this process, or the reason there is none. Detected once per process, since
 * testcontainers caches its runtime client too.
 */
export const detectContainerEngine = (): Promise<ContainerEngine | Error> => {
  detected ??= detect().catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))))
  return detected
}

const detect = async (): Promise<ContainerEngine> => {
  if (process.env.DOCKER_HOST === undefined && existsSync(PODMAN_SOCKET)) {
    process.env.DOCKER_HOST = `unix://${PODMAN_SOCKET}`
    process.env.TESTCONTAINERS_HOST_OVERRIDE ??= LOOPBACK
  }
  const socketPath = unixSocketPath(process.env.DOCKER_HOST)
  // Standard podman sockets (rootful /run/podman, rootless $XDG_RUNTIME_DIR/podman) have "podman" in the path.
  const podman = socketPath?.includes("podman") ?? false
  if (podman) process.env.TESTCONTAINERS_RYUK_DISABLED ??= "true"
  const client = await getContainerRuntimeClient()
  const image = process.env.CAPTURE_TEST_NATS_IMAGE || (podman ? PODMAN_IMAGE : DOCKER_IMAGE)
  if (podman && !(await client.image.exists(ImageName.fromString(image)))) {
    throw new Error(`image ${image} is missing from podman; run: bash infra/podman/setup.sh`)
  }
  await removeOrphans(client).catch(() => {}) // housekeeping only; never a reason to give up on the engine
  return { image, socketPath }
}

/** Removes running containers started by a test process on this host that no longer exists. */
const removeOrphans = async (client: ContainerRuntimeClient): Promise<void> => {
  const containers = await client.container.list()
  const orphans = containers.filter((info) => {
    const [host, pid] = (info.Labels[OWNER_LABEL] ?? "").split("/")
    return host === hostname() && pid !== undefined && !isProcessAlive(Number(pid))
  })
  await Promise.all(
    orphans.map((info) =>
      client.container
        .getById(info.Id)
        .remove({ force: true, v: true })
        .catch(() => {}),
    ),
  )
}

const unixSocketPath = (dockerHost: string | undefined): string | undefined => {
  if (dockerHost === undefined) return existsSync("/var/run/docker.sock") ? "/var/run/docker.sock" : undefined
  return dockerHost.startsWith("unix://") ? dockerHost.slice("unix://".length) : undefined
}

/** nats-server with JetStream in a container, published on 127.0.0.1:`hostPort` only. */
class NatsContainer extends GenericContainer {
  constructor(image: string, hostPort: number) {
    super(image)
    this.withCommand(["-js", "-sd", "/data"])
      .withLabels({ [OWNER_LABEL]: `${hostname()}/${process.pid}` })
      .withExposedPorts(NATS_PORT)
      .withWaitStrategy(Wait.forLogMessage("Server is ready"))
      .withStartupTimeout(30_000)
    // withExposedPorts publishes on every interface with an engine-chosen port; bind loopback only, on a
    // port fixed up front so that restart() keeps the URL.
    this.hostConfig.PortBindings = {
      [`${NATS_PORT}/tcp`]: [{ HostIp: LOOPBACK, HostPort: String(hostPort) }],
    }
  }
}

/** A running nats container; `restart` keeps the container, hence its port and its /data. */
export interface RunningNatsContainer {
  restart(): Promise<void>
  stop(): Promise<void>
}

export const startNatsContainer = async (
  engine: ContainerEngine,
  hostPort: number,
): Promise<RunningNatsContainer> => {
  const container: StartedTestContainer = await new NatsContainer(engine.image, hostPort).start()
  const unregisterCleanup = onProcessExit(() => removeContainerSync(engine, container.getId()))
  let stopped: Promise<void> | undefined
  return {
    // A graceful stop (SIGTERM, then up to 10 s) lets nats-server flush JetStream before it starts again.
    restart: () => container.restart({ timeout: 10_000 }),
    stop: () => {
      stopped ??= container.stop({ timeout: 5_000, remove: true }).then(() => unregisterCleanup())
      return stopped
    },
  }
}

/** Force-removes a container through the engine's unix socket, synchronously (for the exit cleanup). */
const removeContainerSync = (engine: ContainerEngine, id: string): void => {
  if (engine.socketPath === undefined) return
  const url = `http://d/containers/${id}?force=true&v=true`
  spawnSync("curl", ["-s", "--max-time", "5", "--unix-socket", engine.socketPath, "-X", "DELETE", url], {
    stdio: "ignore",
  })
}
