import { decodeJson } from "@capture/protocol"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AssetIndexEntry, ExportBucket } from "../src/index.js"

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

const bytes = (text: string) => new TextEncoder().encode(text)
const text = (data: Uint8Array | undefined) =>
  data === undefined ? undefined : new TextDecoder().decode(data)

describe("ExportBucket", () => {
  it("is `<prefix>_exports`", async () => {
    expect((await ExportBucket.open(nc)).bucket).toBe("capture_exports")
    expect((await ExportBucket.open(nc, { prefix: "other" })).bucket).toBe("other_exports")
  })

  it("writes an object once: a second write of the name keeps the first bytes", async () => {
    const bucket = await ExportBucket.open(nc)
    await bucket.putObject("pieces/s/one.m4s", bytes("first"))
    await bucket.putObject("pieces/s/one.m4s", bytes("second"))
    expect(text(await bucket.getObject("pieces/s/one.m4s"))).toBe("first")
    expect(await bucket.getObject("pieces/s/none.m4s")).toBeUndefined()
  })

  it("stores one object when many processes write the same name at once", async () => {
    const others = await Promise.all(Array.from({ length: 5 }, () => connect({ servers: nats.url })))
    try {
      const buckets = await Promise.all(others.map((c) => ExportBucket.open(c)))
      const big = new Uint8Array(2 * 1024 * 1024).fill(7)
      await Promise.all(buckets.map((b) => b.putObject("pieces/s/raced.m4s", big)))
      const read = await buckets[0]?.getObject("pieces/s/raced.m4s")
      expect(read?.length).toBe(big.length)
      expect(read?.every((b) => b === 7)).toBe(true)
    } finally {
      await Promise.all(others.map((c) => c.close()))
    }
  })

  it("keeps JSON documents, decoded as they are read; one that does not decode reads as absent", async () => {
    const logs: Array<string> = []
    const bucket = await ExportBucket.open(nc, { log: (message) => logs.push(message) })
    const decode = decodeJson(AssetIndexEntry)
    await bucket.putJson("assets/a-1.json", { asset_id: "a-1", video_id: "m-1" })
    expect(await bucket.getJson("assets/a-1.json", decode)).toEqual({ asset_id: "a-1", video_id: "m-1" })
    expect(await bucket.getJson("assets/a-2.json", decode)).toBeUndefined()
    expect(logs).toEqual([])
    await bucket.putJson("assets/a-3.json", { asset_id: "not an asset id", video_id: "m-1" })
    await bucket.putObject("assets/a-4.json", bytes("not json {"))
    expect(await bucket.getJson("assets/a-3.json", decode)).toBeUndefined()
    expect(await bucket.getJson("assets/a-4.json", decode)).toBeUndefined()
    expect(logs).toEqual([
      expect.stringContaining("assets/a-3.json does not decode"),
      expect.stringContaining("assets/a-4.json does not decode"),
    ])
  })
})
