import { randomBytes } from "node:crypto"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { getSha256Backend, Objm } from "@nats-io/obj"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  CHUNKS_IN_FLIGHT,
  OBJECT_CHUNK_BYTES,
  ObjectWriter,
  objectMeta,
  openObjectBucket,
  sha256Hex,
} from "../src/index.js"

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

describe("ObjectWriter", () => {
  /** `bytes` in 64 KiB pieces, as an HTTP body arrives; throws at `failAt` when given. */
  const pieces = async function* (bytes: Uint8Array, failAt?: number) {
    for (let offset = 0; offset < bytes.length; offset += 64 * 1024) {
      if (failAt !== undefined && offset >= failAt) throw new Error("the client went away")
      yield bytes.subarray(offset, offset + 64 * 1024)
    }
  }
  const open = async (bucket: string) => {
    await openObjectBucket(jetstream(nc), bucket, { replicas: 1 })
    const jsm = await jetstreamManager(nc)
    const messages = async () => (await jsm.streams.info(`OBJ_${bucket}`)).state.messages
    return { writer: new ObjectWriter(nc, jsm, bucket), objects: await new Objm(nc).open(bucket), messages }
  }

  it("writes an object of more chunks than it keeps in flight, which @nats-io/obj reads back verified", async () => {
    const { writer, objects } = await open("writer")
    const data = new Uint8Array(randomBytes((CHUNKS_IN_FLIGHT + 2) * OBJECT_CHUNK_BYTES + 777))
    const sizes: Array<number> = []
    const created = await writer.create("a/segment.ts", pieces(data), (size) => {
      sizes.push(size)
      return { sha256: sha256Hex(data), metadata: { record: "r" } }
    })
    expect(sizes).toEqual([data.length])
    expect(created).toMatchObject({ name: "a/segment.ts", size: data.length, chunks: CHUNKS_IN_FLIGHT + 3 })
    const info = await objects.info("a/segment.ts")
    expect(info).toMatchObject({ size: data.length, chunks: CHUNKS_IN_FLIGHT + 3, metadata: { record: "r" } })
    expect(created !== "taken" && created.revision).toBe(info?.revision)
    // getBlob checks the bytes against the digest the writer stored.
    expect(sha256Hex((await objects.getBlob("a/segment.ts")) ?? new Uint8Array())).toBe(sha256Hex(data))
    expect(await writer.info("a/segment.ts")).toEqual(created)
    expect(await writer.info("a/none.ts")).toBeNull()
  })

  it("answers taken for a name in use and purges the chunks it wrote; one of racing writers wins", async () => {
    const { writer, messages } = await open("taken")
    const data = new Uint8Array(randomBytes(2 * OBJECT_CHUNK_BYTES))
    const finish = () => ({ sha256: sha256Hex(data), metadata: {} })
    const results = await Promise.all(
      Array.from({ length: 3 }, () => writer.create("x", pieces(data), finish)),
    )
    expect(results.filter((r) => r !== "taken")).toHaveLength(1)
    // One object: its two chunks and its meta, nothing of the losers.
    expect(await messages()).toBe(3)
    expect(await writer.create("x", pieces(data), finish)).toBe("taken")
    expect(await messages()).toBe(3)
  })

  it("makes nothing visible and keeps no chunk when the body fails or is refused at the end", async () => {
    const { writer, messages } = await open("refused")
    const data = new Uint8Array(randomBytes(3 * OBJECT_CHUNK_BYTES))
    await expect(
      writer.create("y", pieces(data, 2 * OBJECT_CHUNK_BYTES), () => ({
        sha256: sha256Hex(data),
        metadata: {},
      })),
    ).rejects.toThrow("the client went away")
    await expect(
      writer.create("y", pieces(data), () => {
        throw new Error("checksum mismatch")
      }),
    ).rejects.toThrow("checksum mismatch")
    expect(await writer.info("y")).toBeNull()
    expect(await messages()).toBe(0)
  })

  it("replaces an object's metadata only at the revision it was read at", async () => {
    const { writer, objects } = await open("metadata")
    const data = new Uint8Array(randomBytes(100))
    const created = await writer.create("z", pieces(data), () => ({
      sha256: sha256Hex(data),
      metadata: { a: "1" },
    }))
    if (created === "taken") throw new Error("the name was free")
    expect(await writer.setMetadata(created, { a: "2" })).toBe(true)
    expect(await writer.setMetadata(created, { a: "3" })).toBe(false)
    expect((await objects.info("z"))?.metadata).toEqual({ a: "2" })
    expect(sha256Hex((await objects.getBlob("z")) ?? new Uint8Array())).toBe(sha256Hex(data))
  })
})
