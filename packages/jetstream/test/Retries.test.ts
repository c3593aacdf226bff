import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { isStreamNotFound, isTransient, retryTransient } from "../src/index.js"

let server: NatsServerHandle
let nc: NatsConnection

beforeAll(async () => {
  server = await startNatsServer()
  nc = await connect({ servers: server.url })
})
afterAll(async () => {
  await nc?.close()
  await server?.stop()
})

/** Counts the tries of `request`. */
const counted = <A>(request: () => Promise<A>) => {
  const tries = { count: 0 }
  return {
    tries,
    request: () => {
      tries.count++
      return request()
    },
  }
}

describe("retryTransient", () => {
  it("retries while nobody answers, as during a leader election, and returns the first answer", async () => {
    // The responder comes up after a while, as JetStream's API does once a leader is elected.
    const { tries, request } = counted(() => nc.request("retry.service", "ping", { timeout: 1_000 }))
    const later = setTimeout(() => {
      nc.subscribe("retry.service", {
        callback: (_, message) => {
          message.respond("pong")
        },
      })
    }, 400)
    try {
      const answer = await retryTransient(request)
      expect(answer.string()).toBe("pong")
      expect(tries.count).toBeGreaterThanOrEqual(2)
    } finally {
      clearTimeout(later)
    }
  })

  it("gives up once its budget is spent, with the last transient error", async () => {
    const { tries, request } = counted(() => nc.request("retry.nobody", "ping"))
    const started = performance.now()
    await expect(retryTransient(request, 500)).rejects.toSatisfy(isTransient)
    expect(performance.now() - started).toBeLessThan(1_500)
    // Pauses of 100 and 200 ms fit in the budget, the next (400 ms) would not: three tries, or two
    // when the machine is slow enough to push the second past 300 ms.
    expect(tries.count).toBeGreaterThanOrEqual(2)
    expect(tries.count).toBeLessThanOrEqual(3)
  })

  it("throws any other error at once", async () => {
    const jsm = await jetstreamManager(nc)
    const { tries, request } = counted(() => jsm.streams.info("NO_SUCH_STREAM"))
    await expect(retryTransient(request)).rejects.toSatisfy(isStreamNotFound)
    expect(tries.count).toBe(1)
  })
})
