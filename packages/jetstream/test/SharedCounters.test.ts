import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { jetstream } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { SharedCounters } from "../src/index.js"

let server: NatsServerHandle
const connections: Array<NatsConnection> = []

beforeAll(async () => {
  server = await startNatsServer()
})
afterAll(async () => {
  await Promise.all(connections.map((nc) => nc.close()))
  await server?.stop()
})

/** A counter set on its own connection, as another process would have. */
const openCounters = async (
  bucket: string,
  options?: { readonly dropOnFailure?: (key: string) => boolean },
) => {
  const nc = await connect({ servers: server.url })
  connections.push(nc)
  const kv = await new Kvm(jetstream(nc)).create(bucket, { history: 1 })
  return new SharedCounters(kv, { syncMs: 60_000, knownLimit: 100, log: () => {}, ...options })
}

describe("SharedCounters", () => {
  it("adds what several processes counted, none lost to their concurrent compare-and-set", async () => {
    const processes = await Promise.all([1, 2, 3].map(() => openCounters("counters_concurrent")))
    for (const [i, counters] of processes.entries()) counters.count("account.a", 10 * (i + 1))
    await Promise.all(processes.map((counters) => counters.sync()))
    const reader = await openCounters("counters_concurrent")
    await reader.refresh("account.a")
    expect(reader.total("account.a")).toBe(60)
    await Promise.all([...processes, reader].map((counters) => counters.stop()))
  })

  it("shows the total last read plus what is pending here, and forgets the oldest key over its limit", async () => {
    const counters = await openCounters("counters_known")
    counters.count("k0", 5)
    expect(counters.total("k0")).toBe(5)
    expect(counters.isFresh("k0")).toBe(false)
    await counters.sync()
    expect(counters.isFresh("k0")).toBe(true)
    for (let i = 1; i <= 100; i++) counters.count(`k${i}`, 1)
    await counters.sync()
    // k0 was remembered first and is forgotten; the bucket still has it.
    expect(counters.isFresh("k0")).toBe(false)
    expect(counters.total("k0")).toBe(0)
    await counters.refresh("k0")
    expect(counters.total("k0")).toBe(5)
    await counters.stop()
  })

  it("keeps a count whose sync failed for the next sync, unless told to drop it", async () => {
    // Its own connection, closed below: every read and write then fails at once.
    const nc = await connect({ servers: server.url })
    const kv = await new Kvm(jetstream(nc)).create("counters_failing", { history: 1 })
    const kept = new SharedCounters(kv, { syncMs: 60_000, knownLimit: 100, log: () => {} })
    const dropped = new SharedCounters(kv, {
      syncMs: 60_000,
      knownLimit: 100,
      log: () => {},
      dropOnFailure: (key) => key.startsWith("old."),
    })
    await nc.close()
    kept.count("now.1", 1)
    dropped.count("old.1", 1)
    await Promise.all([kept.sync(), dropped.sync()])
    expect(kept.total("now.1")).toBe(1)
    expect(dropped.total("old.1")).toBe(0)
    await Promise.all([kept.stop(), dropped.stop()])
  })
})
