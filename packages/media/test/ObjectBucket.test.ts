import { randomBytes } from "node:crypto"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { getSha256Backend } from "@nats-io/obj"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { OBJECT_CHUNK_BYTES, objectMeta, openObjectBucket } from "../src/index.js"

let nats: NatsServerHandle
let nc: NatsConnection

beforeAll(async () => {
  nats = await startNatsServer()
  nc = await connect({ servers: nats.url })
})
afterAll(async () => {
  await nc?.close()
  await nats?.stop()
})

describe("openObjectBucket", () => {
  it("opens one file-backed bucket from many processes at once, hashing natively from then on", async () => {
    const connections = await Promise.all(Array.from({ length: 4 }, () => connect({ servers: nats.url })))
    try {
      const buckets = await Promise.all(
        connections.map((c) => openObjectBucket(jetstream(c), "racing", { replicas: 1 })),
      )
      expect(buckets).toHaveLength(4)
    } finally {
      await Promise.all(connections.map((c) => c.close()))
    }
    const info = await (await jetstreamManager(nc)).streams.info("OBJ_racing")
    expect(info.config).toMatchObject({ storage: "file", num_replicas: 1 })
    expect(getSha256Backend()).toBe("native")
  })
})

describe("objectMeta", () => {
  it("names the object, keeps its metadata and asks for large chunks", () => {
    expect(objectMeta("a/b")).toEqual({ name: "a/b", options: { max_chunk_size: OBJECT_CHUNK_BYTES } })
    expect(objectMeta("a/b", { sha: "x" })).toEqual({
      name: "a/b",
      metadata: { sha: "x" },
      options: { max_chunk_size: OBJECT_CHUNK_BYTES },
    })
  })

  it("stores an object with its metadata, which reads back with the bytes", async () => {
    const bucket = await openObjectBucket(jetstream(nc), "meta", { replicas: 1 })
    const data = new Uint8Array(randomBytes(OBJECT_CHUNK_BYTES + 1))
    await bucket.putBlob(objectMeta("segment", { record: '{"index":0}' }), data)
    const info = await bucket.info("segment")
    expect(info).toMatchObject({ size: data.length, chunks: 2, metadata: { record: '{"index":0}' } })
    expect(await bucket.getBlob("segment")).toEqual(data)
  })
})
