import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { openTopology } from "../src/index.js"

let nats: NatsServerHandle
const connections: Array<NatsConnection> = []

beforeAll(async () => {
  nats = await startNatsServer()
  for (let i = 0; i < 8; i++) connections.push(await connect({ servers: nats.url }))
})
afterAll(async () => {
  for (const nc of connections) await nc.close()
  await nats?.stop()
})

describe("openTopology", () => {
  it("opens the same new deployment from several processes at once", async () => {
    // Each round a fresh prefix: every instance races to create the stream and the three buckets.
    for (let round = 0; round < 20; round++) {
      const prefix = `race${round}`
      const opened = await Promise.all(connections.map((nc) => openTopology(nc, { prefix })))
      expect(opened.map((t) => t.eventStream)).toEqual(connections.map(() => `RACE${round}_EVENTS`))
      await opened[0]?.sessions.put("probe", "1")
      expect((await opened[7]?.sessions.get("probe"))?.string()).toBe("1")
    }
  })
})
