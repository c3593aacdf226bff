import { newSessionId, type SessionId } from "@capture/protocol"
import { type NatsClusterHandle, startNatsCluster } from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { foldEvents, type SessionRuntime, startSessionRuntime } from "../src/index.js"
import { create, exportOf, finish, media, start, stop } from "./commands.js"

let cluster: NatsClusterHandle
let nc: NatsConnection
let runtime: SessionRuntime

beforeAll(async () => {
  cluster = await startNatsCluster({ size: 3 })
  // Connect through the nodes that stay up, so the client does not spend the test reconnecting.
  nc = await connect({ servers: cluster.urls.slice(1), maxReconnectAttempts: -1, reconnectTimeWait: 100 })
  runtime = await startSessionRuntime(nc, { topology: { replicas: 3 } })
}, 120_000)
afterAll(async () => {
  await runtime?.stop()
  await nc?.close()
  await cluster?.stop()
})

/** Retries a command through a leader election; the command id makes the retry safe. */
const ok = async (command: Parameters<SessionRuntime["host"]["execute"]>[0]) => {
  for (let attempt = 0; ; attempt++) {
    try {
      const outcome = await runtime.host.execute(command)
      if (Result.isFailure(outcome)) throw new Error(outcome.failure.message)
      return outcome.success
    } catch (error) {
      if (attempt >= 40) throw error
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
  }
}

const displays = Array.from({ length: 4 }, (_, i) => ({ channel_id: `display:${i + 1}` }))

const runLifecycle = async (id: SessionId) => {
  for (const command of [create(id), start(id, displays), media(id, "display:1"), stop(id), finish(id)]) {
    await ok(command)
  }
  for (const d of displays) await ok(exportOf(id, d.channel_id))
}

describe("on a 3-node JetStream cluster (replicas 3)", () => {
  it("keeps accepting commands with one node stopped, and loses no event", async () => {
    const before = Array.from({ length: 3 }, () => newSessionId())
    for (const id of before) await runLifecycle(id)

    await cluster.stopNode(0)
    await cluster.waitForJetStream()
    const during = Array.from({ length: 3 }, () => newSessionId())
    for (const id of during) await runLifecycle(id)

    await cluster.restartNode(0)
    await cluster.waitForJetStream()
    const after = newSessionId()
    await runLifecycle(after)

    for (const id of [...before, ...during, after]) {
      const events = []
      for await (const stored of runtime.events.read(id)) events.push(stored.event)
      // Five events to stopped, then an export request per display but display:1, the automatic one.
      expect(events.map((e) => e.sequence)).toEqual(Array.from({ length: 8 }, (_, i) => i + 1))
      expect(foldEvents(events).context.exports).toHaveLength(4)
    }
    // Read back through the restarted node alone: it caught up with what it missed.
    const direct = await connect({ servers: cluster.urls.slice(0, 1) })
    try {
      const reader = await startSessionRuntime(direct, { topology: { replicas: 3 } })
      const loaded = await reader.host.load(during[0] ?? "")
      expect(loaded.state.context.sequence).toBe(8)
    } finally {
      await direct.close()
    }
  }, 180_000)
})
