import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import {
  DiscardPolicy,
  type JetStreamManager,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createRacing, ensureStream, isCreationRace, isStreamNotFound } from "../src/index.js"

let server: NatsServerHandle
let nc: NatsConnection
let jsm: JetStreamManager

beforeAll(async () => {
  server = await startNatsServer()
  nc = await connect({ servers: server.url })
  jsm = await jetstreamManager(nc)
})
afterAll(async () => {
  await nc?.close()
  await server?.stop()
})

/** Separate connections, as separate processes would have. */
const connections = (count: number) =>
  Promise.all(Array.from({ length: count }, () => connect({ servers: server.url })))

describe("ensureStream", () => {
  it("creates a missing stream as history: file storage, limits, no single deletes, a 2-minute dedupe window", async () => {
    await ensureStream(jsm, { name: "HISTORY", subjects: ["history.>"], replicas: 1 })
    const { config } = await jsm.streams.info("HISTORY")
    expect(config).toMatchObject({
      subjects: ["history.>"],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      num_replicas: 1,
      deny_delete: true,
      duplicate_window: 120 * 1_000_000_000,
    })
  })

  it("lets a stream that is not history delete single messages", async () => {
    await ensureStream(jsm, { name: "WORK", subjects: ["work.>"], replicas: 1, denyDelete: false })
    expect((await jsm.streams.info("WORK")).config.deny_delete).toBe(false)
  })

  it("is idempotent, and leaves an existing stream's configuration as it is", async () => {
    await jsm.streams.add({ name: "EXISTING", subjects: ["existing.>"], max_msgs: 10 })
    await ensureStream(jsm, { name: "EXISTING", subjects: ["existing.>"], replicas: 1 })
    await ensureStream(jsm, { name: "EXISTING", subjects: ["existing.>"], replicas: 1 })
    const { config } = await jsm.streams.info("EXISTING")
    expect([config.max_msgs, config.deny_delete]).toEqual([10, false])
    expect((await jsm.streams.names().next()).filter((n) => n === "EXISTING")).toHaveLength(1)
  })

  it("makes one stream when many processes ensure it at the same moment", async () => {
    const others = await connections(6)
    try {
      const managers = await Promise.all(others.map((c) => jetstreamManager(c)))
      await Promise.all(
        managers.map((m) => ensureStream(m, { name: "RACED", subjects: ["raced.>"], replicas: 1 })),
      )
      const names = await jsm.streams.names().next()
      expect(names.filter((n) => n === "RACED")).toHaveLength(1)
      expect((await jsm.streams.info("RACED")).config.subjects).toEqual(["raced.>"])
    } finally {
      await Promise.all(others.map((c) => c.close()))
    }
  })

  it("retries a lost creation race until the winner's stream is there", async () => {
    // While the winner's stream is being set up, JetStream tells the loser the subjects overlap. A
    // stream holding the subjects stands in for it, removed once a second create came in.
    await jsm.streams.add({ name: "SETTING_UP", subjects: ["late.>"] })
    let creates = 0
    const watch = nc.subscribe("$JS.API.STREAM.CREATE.LATE", {
      callback: () => {
        creates++
        if (creates === 2) void jsm.streams.delete("SETTING_UP")
      },
    })
    await nc.flush()
    try {
      await ensureStream(jsm, { name: "LATE", subjects: ["late.>"], replicas: 1 })
    } finally {
      watch.unsubscribe()
    }
    expect(creates).toBeGreaterThanOrEqual(2)
    expect((await jsm.streams.info("LATE")).config.subjects).toEqual(["late.>"])
  })

  it("reports subjects another stream owns, after retrying them as a lost race", async () => {
    await jsm.streams.add({ name: "OWNER", subjects: ["owned.>"] })
    await expect(
      ensureStream(jsm, { name: "INTRUDER", subjects: ["owned.>"], replicas: 1 }),
    ).rejects.toSatisfy(isCreationRace)
    await expect(jsm.streams.info("INTRUDER")).rejects.toSatisfy(isStreamNotFound)
  })
})

describe("createRacing", () => {
  it("runs a create again after it lost a creation race, and the retry finds the bucket", async () => {
    // The winner's stream is still being set up when the loser asks: JetStream answers "subjects
    // overlap". A stream holding the bucket's subjects stands in for it until the first try failed.
    await jsm.streams.add({ name: "WINNER_SETTING_UP", subjects: ["$KV.raced.>"] })
    const errors: unknown[] = []
    const kv = await createRacing(async () => {
      try {
        return await new Kvm(nc).create("raced", { history: 1 })
      } catch (error) {
        errors.push(error)
        if (errors.length === 1) await jsm.streams.delete("WINNER_SETTING_UP")
        throw error
      }
    })
    expect(errors).toHaveLength(1)
    expect(isCreationRace(errors[0])).toBe(true)
    await kv.put("key", "value")
    expect((await kv.get("key"))?.string()).toBe("value")
  })

  it("gives up after `attempts` lost races, with JetStream's error", async () => {
    await jsm.streams.add({ name: "HOLDS_FOREVER", subjects: ["$KV.held.>"] })
    let tries = 0
    const attempt = createRacing(() => {
      tries++
      return new Kvm(nc).create("held")
    }, 3)
    await expect(attempt).rejects.toSatisfy(isCreationRace)
    expect(tries).toBe(3)
  })

  it("throws any other error at once", async () => {
    let tries = 0
    const attempt = createRacing(() => {
      tries++
      return jsm.streams.info("NO_SUCH_STREAM")
    })
    await expect(attempt).rejects.toSatisfy(isStreamNotFound)
    expect(tries).toBe(1)
  })

  it("opens one bucket when many processes create it at the same moment", async () => {
    const others = await connections(6)
    try {
      const buckets = await Promise.all(
        others.map((c) => createRacing(() => new Kvm(c).create("shared", { history: 1 }))),
      )
      await buckets[0]?.put("from-first", "1")
      for (const bucket of buckets) expect((await bucket.get("from-first"))?.string()).toBe("1")
      expect((await jsm.streams.names().next()).filter((n) => n === "KV_shared")).toHaveLength(1)
    } finally {
      await Promise.all(others.map((c) => c.close()))
    }
  })
})
