/**
 * A clustered JetStream (3 nodes by default) of nats-server child processes on 127.0.0.1, for suites that
 * exercise failover: nodes can be stopped and restarted individually, keeping their ports and stores.
 * Streams created on it should use `num_replicas: 3` (one replica per node), so that they survive the loss of
 * one node; with the default R1 a stream lives on a single node and goes away with it.
 *
 *   const cluster = await startNatsCluster()       // resolves once JetStream has a meta leader
 *   const nc = await connect({ servers: cluster.urls })
 *   await cluster.stopNode(0)                      // the other two keep quorum
 *   await cluster.restartNode(0)
 *   await cluster.killNode(1)                      // SIGKILL, as in a crash
 *   await cluster.stop()
 */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import type { NatsServerProcess } from "@capture/nats-server"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { getFreePorts, LOOPBACK } from "./FreePorts.js"
import { natsProcess, resolveNatsServerBinary } from "./internal/NatsProcess.js"
import { makeTempDir } from "./internal/TempDir.js"

const CLUSTER_NAME = "capture-test"
const JETSTREAM_TIMEOUT_MS = 30_000

export interface NatsClusterOptions {
  /** Number of nodes; 3 by default (the smallest cluster that keeps quorum with a node down). */
  readonly size?: number
  /** The nats-server binary (default: `NATS_SERVER_BIN`, else `nats-server` on PATH, else /usr/sbin/nats-server). */
  readonly bin?: string
  /** A folder to append each node's log to (`n1.log`, …), e.g. to find out why a node stayed out. */
  readonly logDir?: string
}

export interface NatsClusterHandle {
  /** Client URL of each node (`nats://127.0.0.1:PORT`), indexed like `stopNode`/`restartNode`. */
  readonly urls: readonly string[]
  /** All client URLs, comma-joined (the form `NATS_URL` takes). */
  readonly servers: string
  /** Stops node `index` (0-based); its store is kept for `restartNode`. */
  stopNode(index: number): Promise<void>
  /** SIGKILLs node `index` (a crash: no clean shutdown); its store is kept for `restartNode`. */
  killNode(index: number): Promise<void>
  /** The pid of node `index` while it runs. */
  pidOf(index: number): number | undefined
  /** Stops node `index` if running and starts it again with the same ports and store. */
  restartNode(index: number): Promise<void>
  /** Stops every node and deletes their stores. Idempotent. */
  stop(): Promise<void>
  /** Resolves once the cluster has a JetStream meta leader (API requests answered), e.g. after failovers. */
  waitForJetStream(): Promise<void>
}

/** Starts a JetStream cluster of nats-server processes and waits until it has a meta leader. */
export const startNatsCluster = async (options: NatsClusterOptions = {}): Promise<NatsClusterHandle> => {
  const size = options.size ?? 3
  if (!Number.isInteger(size) || size < 1) throw new Error(`cluster size must be a positive integer: ${size}`)
  const bin = options.bin ?? resolveNatsServerBinary()
  const dir = makeTempDir("cluster")
  const ports = await getFreePorts(2 * size)
  const clientPorts = ports.slice(0, size)
  const routePorts = ports.slice(size)
  const urls = clientPorts.map((port) => `nats://${LOOPBACK}:${port}`)

  const nodes = clientPorts.map((clientPort, i) => {
    const name = `n${i + 1}`
    const routes = routePorts.filter((_, j) => j !== i).map((port) => `nats-route://${LOOPBACK}:${port}`)
    const configFile = join(dir.path, `${name}.conf`)
    writeFileSync(
      configFile,
      nodeConfig({ name, clientPort, routePort: routePorts[i] ?? 0, routes, storeDir: join(dir.path, name) }),
    )
    const logFile = options.logDir === undefined ? undefined : join(options.logDir, `${name}.log`)
    return natsProcess(`cluster node ${name} (:${clientPort})`, bin, ["-c", configFile], logFile)
  })
  const node = (index: number): NatsServerProcess => {
    const found = nodes[index]
    if (found === undefined) throw new Error(`no cluster node ${index} (size ${size})`)
    return found
  }

  let stopped: Promise<void> | undefined
  const handle: NatsClusterHandle = {
    urls,
    servers: urls.join(","),
    stopNode: (index) => node(index).stop(),
    killNode: (index) => node(index).kill(),
    pidOf: (index) => node(index).pid,
    restartNode: async (index) => {
      await node(index).stop()
      await node(index).start()
    },
    stop: () => {
      stopped ??= Promise.all(nodes.map((n) => n.stop())).then(dir.remove)
      return stopped
    },
    waitForJetStream: () => waitForJetStream(urls),
  }

  try {
    await Promise.all(nodes.map((n) => n.start()))
    await handle.waitForJetStream()
    await waitForPlacement(urls, size, () =>
      nodes.map((n) => `${n.options.name}:\n${n.recentLog}`).join("\n"),
    )
  } catch (error) {
    await handle.stop()
    throw error
  }
  console.info(`[testkit] NATS cluster via ${size} processes (${bin}) at ${handle.servers}`)
  return handle
}

interface NodeConfig {
  readonly name: string
  readonly clientPort: number
  readonly routePort: number
  readonly routes: readonly string[]
  readonly storeDir: string
}

/** nats-server configuration for one node; strings go through JSON.stringify, which the format accepts. */
const nodeConfig = (node: NodeConfig): string => {
  const q = (value: string): string => JSON.stringify(value)
  return [
    `server_name: ${q(node.name)}`,
    `host: ${q(LOOPBACK)}`,
    `port: ${node.clientPort}`,
    `jetstream {`,
    `  store_dir: ${q(node.storeDir)}`,
    `}`,
    `cluster {`,
    `  name: ${q(CLUSTER_NAME)}`,
    `  listen: ${q(`${LOOPBACK}:${node.routePort}`)}`,
    `  routes: [`,
    ...node.routes.map((route) => `    ${q(route)}`),
    `  ]`,
    `}`,
    "",
  ].join("\n")
}

/**
 * Retries creating (and deleting) a stream with one replica per node until it succeeds: a meta
 * leader is not enough, every node must have joined the meta group. On the loaded test machine a
 * node sometimes stays out of it (2.10.27 as 2.9.10), and every R3 creation then fails with "no
 * suitable peers for placement"; this says so at once, with the nodes' logs.
 */
const waitForPlacement = async (urls: readonly string[], size: number, logs: () => string): Promise<void> => {
  const deadline = Date.now() + JETSTREAM_TIMEOUT_MS
  const nc = await connect({ servers: [...urls], timeout: 2_000, maxReconnectAttempts: -1 })
  try {
    let lastError: unknown
    while (Date.now() < deadline) {
      try {
        const jsm = await jetstreamManager(nc, { timeout: 5_000, checkAPI: false })
        const name = `TESTKIT_PLACEMENT_${Date.now()}`
        await jsm.streams.add({ name, subjects: [`testkit.placement.${name}`], num_replicas: size })
        await jsm.streams.delete(name)
        return
      } catch (error) {
        lastError = error
        await new Promise((resolve) => setTimeout(resolve, 1_000))
      }
    }
    throw new Error(
      `a stream of ${size} replicas cannot be placed after ${JETSTREAM_TIMEOUT_MS / 1000} s (a node out of the meta group?): ${String(lastError)}\n${logs()}`,
    )
  } finally {
    await nc.close()
  }
}

/** Retries a JetStream API request until it is answered, which needs an elected meta leader. */
const waitForJetStream = async (urls: readonly string[]): Promise<void> => {
  const deadline = Date.now() + JETSTREAM_TIMEOUT_MS
  const nc = await connect({ servers: [...urls], timeout: 2_000, maxReconnectAttempts: -1 })
  try {
    let lastError: unknown
    while (Date.now() < deadline) {
      try {
        const jsm = await jetstreamManager(nc, { timeout: 2_000, checkAPI: false })
        await jsm.getAccountInfo()
        return
      } catch (error) {
        lastError = error
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
    }
    throw new Error(`no JetStream meta leader after ${JETSTREAM_TIMEOUT_MS / 1000} s: ${String(lastError)}`)
  } finally {
    await nc.close()
  }
}
