/**
 * `capture serve` started before its NATS: it retries the start with backoff, logging each try,
 * and becomes ready once a nats-server comes up late; with nothing coming it gives up after
 * `--start-retry` with exit 3.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { NatsServerProcess, resolveNatsServerBinary } from "@capture/nats-server"
import {
  getFreePorts,
  LOOPBACK,
  type NatsClusterHandle,
  startNatsCluster,
  startNatsServer,
} from "@capture/testkit"
import { afterAll, describe, expect, it } from "vitest"
import { type ServeProcess, startServe } from "./cli.js"

const running: ServeProcess[] = []
const servers: NatsServerProcess[] = []
const dirs: string[] = []
let cluster: NatsClusterHandle | undefined
afterAll(async () => {
  await cluster?.stop()
  for (const serve of running) if (serve.child.exitCode === null) serve.child.kill("SIGKILL")
  for (const server of servers) await server.stop()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

describe("capture serve started while NATS is down", () => {
  it("retries its start with backoff and is ready once a nats-server starts late", async () => {
    const [natsPort = 0, httpPort = 0] = await getFreePorts(2)
    const serve = startServe(["--role", "gateway", "--port", String(httpPort), "--start-retry", "2m"], {
      NATS_URL: `nats://${LOOPBACK}:${natsPort}`,
    })
    running.push(serve)
    // The tries so far: 1 s, then 2 s apart, each logged with what failed.
    await serve.waitFor(/start failed: cannot connect to NATS[^\n]*try 2,/, 60_000)
    expect(serve.child.exitCode).toBeNull()

    const storeDir = mkdtempSync(join(tmpdir(), "capture-late-nats-"))
    dirs.push(storeDir)
    const nats = new NatsServerProcess({
      name: `nats-server :${natsPort}`,
      bin: resolveNatsServerBinary(),
      args: ["-js", "-a", LOOPBACK, "-p", String(natsPort), "-sd", storeDir],
    })
    servers.push(nats)
    await nats.start()

    await serve.waitFor(/ready \(nats /, 120_000)
    const ready = await fetch(`http://${LOOPBACK}:${httpPort}/readyz`)
    expect(ready.status).toBe(200)
    serve.child.kill("SIGTERM")
    expect(await serve.exited).toEqual({ code: 0, signal: null })
  }, 240_000)

  it("gives up after --start-retry with exit 3", async () => {
    const [natsPort = 0, httpPort = 0] = await getFreePorts(2)
    const startedAt = Date.now()
    const serve = startServe(["--role", "muxer", "--port", String(httpPort), "--start-retry", "4s"], {
      NATS_URL: `nats://${LOOPBACK}:${natsPort}`,
    })
    running.push(serve)
    const exit = await serve.exited
    expect(exit, serve.output()).toEqual({ code: 3, signal: null })
    expect(serve.output()).toMatch(/start failed: cannot connect to NATS/)
    expect(serve.output()).toMatch(/capture: cannot connect to NATS[^\n]*\(gave up after \d+ tries\)/)
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(3_000)
  }, 120_000)

  it("does not retry a start that fails for a bad setting: exit 3 at once", async () => {
    const nats = await startNatsServer()
    try {
      const [httpPort = 0] = await getFreePorts(1)
      const serve = startServe(["--role", "gateway", "--port", String(httpPort), "--start-retry", "5m"], {
        NATS_URL: nats.url,
        // A session this large would not fit in a NATS message: the gateway refuses to start.
        CAPTURE_MAX_METADATA_BYTES: String(8 * 1024 * 1024),
      })
      running.push(serve)
      const exit = await serve.exited
      expect(exit, serve.output()).toEqual({ code: 3, signal: null })
      expect(serve.output()).toMatch(/capture: cannot start the gateway: [^\n]*max_payload/)
      expect(serve.output()).not.toMatch(/start failed/)
    } finally {
      await nats.stop()
    }
  }, 120_000)

  it("retries while a cluster without quorum cannot place its streams, and starts once it can", async () => {
    cluster = await startNatsCluster()
    const natsCluster = cluster
    // One node of three left: reachable, but no stream of three replicas can be created.
    await natsCluster.stopNode(1)
    await natsCluster.stopNode(2)
    const [httpPort = 0] = await getFreePorts(1)
    const serve = startServe(
      ["--role", "muxer", "--port", String(httpPort), "--replicas", "3", "--start-retry", "3m"],
      { NATS_URL: natsCluster.servers },
    )
    running.push(serve)
    await serve.waitFor(/start failed: cannot start the session runtime[^\n]*try 2,/, 120_000)
    expect(serve.child.exitCode).toBeNull()
    await natsCluster.restartNode(1)
    await natsCluster.restartNode(2)
    await serve.waitFor(/ready \(nats /, 150_000)
    serve.child.kill("SIGTERM")
    expect(await serve.exited).toEqual({ code: 0, signal: null })
  }, 360_000)
})
