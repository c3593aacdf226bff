import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import {
  AckPolicy,
  DeliverPolicy,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ensureDurableConsumer, isStreamNotFound } from "../src/index.js"

let server: NatsServerHandle
let nc: NatsConnection
let jsm: JetStreamManager

beforeAll(async () => {
  server = await startNatsServer()
  nc = await connect({ servers: server.url })
  jsm = await jetstreamManager(nc)
  await jsm.streams.add({ name: "WORK", subjects: ["work.>"] })
})
afterAll(async () => {
  await nc?.close()
  await server?.stop()
})

const config = (durable: string) => ({
  durable_name: durable,
  ack_policy: AckPolicy.Explicit,
  deliver_policy: DeliverPolicy.All,
  filter_subject: "work.>",
})

describe("ensureDurableConsumer", () => {
  it("creates the consumer, and a second call keeps it with what it has consumed", async () => {
    await ensureDurableConsumer(jsm, "WORK", config("workers"))
    const js = jetstream(nc)
    await js.publish("work.1", "one")
    const consumer = await js.consumers.get("WORK", "workers")
    const first = await consumer.next({ expires: 2_000 })
    expect(first?.string()).toBe("one")
    first?.ack()
    await first?.ackAck()

    await ensureDurableConsumer(jsm, "WORK", config("workers"))
    const info = await jsm.consumers.info("WORK", "workers")
    expect([info.config.durable_name, info.delivered.stream_seq, info.num_ack_pending]).toEqual([
      "workers",
      1,
      0,
    ])
  })

  it("leaves one consumer when many processes ensure it at the same moment, and they share its work", async () => {
    const others = await Promise.all(Array.from({ length: 6 }, () => connect({ servers: server.url })))
    try {
      await Promise.all(
        others.map(async (c) => ensureDurableConsumer(await jetstreamManager(c), "WORK", config("shared"))),
      )
      const names: string[] = []
      for await (const info of jsm.consumers.list("WORK")) names.push(info.name)
      expect(names.filter((n) => n === "shared")).toHaveLength(1)
      // Each message goes to one of the instances pulling from it.
      const js = jetstream(nc)
      for (let i = 0; i < 4; i++) await js.publish(`work.shared.${i}`, `${i}`)
      const consumers = await Promise.all(
        others.slice(0, 2).map((c) => jetstream(c).consumers.get("WORK", "shared")),
      )
      const received: string[] = []
      for (let turn = 0; received.length < 5; turn++) {
        const message = await consumers[turn % 2]?.next({ expires: 1_000 })
        if (message === null || message === undefined) break
        received.push(message.string())
        message.ack()
      }
      // The stream also holds "one" from the first test: the consumer starts at the beginning.
      expect(received.sort()).toEqual(["0", "1", "2", "3", "one"])
    } finally {
      await Promise.all(others.map((c) => c.close()))
    }
  })

  it("throws when the stream does not exist", async () => {
    await expect(ensureDurableConsumer(jsm, "NO_SUCH_STREAM", config("lost"))).rejects.toSatisfy(
      isStreamNotFound,
    )
  })
})
