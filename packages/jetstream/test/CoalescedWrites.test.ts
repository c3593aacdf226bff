import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { coalesceWrites } from "../src/index.js"

let server: NatsServerHandle
let receiver: NatsConnection
const connections: Array<NatsConnection> = []

beforeAll(async () => {
  server = await startNatsServer()
  receiver = await connect({ servers: server.url })
})
afterAll(async () => {
  await Promise.all(connections.map((nc) => nc.close()))
  await receiver?.close()
  await server?.stop()
})

/** A coalescing connection, and how many times it has written to its socket. */
const coalescing = async () => {
  const nc = await connect({ servers: server.url })
  connections.push(nc)
  coalesceWrites(nc)
  // The count is of nats.js's transport sends, each one socket write.
  const transport = (nc as unknown as { protocol: { transport: { send: (frame: Uint8Array) => void } } })
    .protocol.transport
  const send = transport.send.bind(transport)
  let writes = 0
  transport.send = (frame) => {
    writes++
    send(frame)
  }
  return { nc, writes: () => writes }
}

/** Collects `count` messages on `subject`. */
const collect = (subject: string, count: number) => {
  const received: Array<string> = []
  const subscription = receiver.subscribe(subject, { max: count })
  const done = (async () => {
    for await (const message of subscription) received.push(message.string())
    return received
  })()
  return { ready: receiver.flush(), done }
}

describe("coalesceWrites", () => {
  it("sends what one turn of the event loop published in one write, in order", async () => {
    const { nc, writes } = await coalescing()
    const { ready, done } = collect("coalesced.order", 500)
    await ready
    const before = writes()
    // One publish per microtask, as a chain of awaits makes them: without coalescing, nats.js's
    // flush (itself a microtask) runs between any two of them, a write each.
    for (let i = 0; i < 500; i++) {
      nc.publish("coalesced.order", `${i}`)
      await Promise.resolve()
    }
    await new Promise((resolve) => setImmediate(resolve))
    expect(writes() - before).toBe(1)
    expect(await done).toEqual(Array.from({ length: 500 }, (_, i) => `${i}`))
  })

  it("still writes at once past nats.js's size threshold, and requests and flushes are answered", async () => {
    const { nc, writes } = await coalescing()
    const { ready, done } = collect("coalesced.large", 100)
    await ready
    const before = writes()
    const kilobyte = "x".repeat(1024)
    for (let i = 0; i < 100; i++) nc.publish("coalesced.large", `${i} ${kilobyte}`)
    // 100 KiB against a 32 KiB threshold: written during the loop, before the turn ends.
    expect(writes() - before).toBeGreaterThanOrEqual(2)
    expect((await done).map((message) => message.split(" ")[0])).toEqual(
      Array.from({ length: 100 }, (_, i) => `${i}`),
    )
    const replying = receiver.subscribe("coalesced.echo", {
      callback: (_, message) => {
        message.respond(message.data)
      },
    })
    await receiver.flush()
    expect((await nc.request("coalesced.echo", "ping", { timeout: 5_000 })).string()).toBe("ping")
    await nc.flush()
    replying.unsubscribe()
  })
})
