import { randomBytes } from "node:crypto"
import { newSessionId, type SessionId } from "@capture/protocol"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { getSha256Backend, Objm } from "@nats-io/obj"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import {
  MediaStore,
  OBJECT_CHUNK_BYTES,
  SegmentChecksumMismatch,
  SegmentConflict,
  type SegmentInput,
  segmentObjectName,
  sha256Hex,
} from "../src/index.js"

/** Length and SHA-256 of bytes: vitest's toEqual walks a megabyte array element by element (tens of seconds on a loaded machine). */
const digestOf = (bytes: Uint8Array | undefined) =>
  bytes === undefined ? "missing" : `${bytes.length} bytes, sha256 ${sha256Hex(bytes)}`

const segment = (
  session_id: SessionId,
  channel_id: string,
  index: number,
  data: Uint8Array,
  final = false,
): SegmentInput => ({
  session_id,
  channel_id,
  index,
  start_ms: 1_700_000_000_000 + index * 2000,
  duration_ms: 2000,
  sha256: sha256Hex(data),
  final,
  container: "mpegts",
})

describe("MediaStore", () => {
  let nats: NatsServerHandle
  let nc: NatsConnection
  let store: MediaStore

  beforeAll(async () => {
    nats = await startNatsServer()
    nc = await connect({ servers: nats.url })
    store = await MediaStore.open(nc)
  })
  afterAll(async () => {
    await nc?.close()
    await nats?.stop()
  })

  it("names its bucket, stream and subjects", () => {
    expect(store.topology.bucket).toBe("capture_media")
    expect(store.topology.stream).toBe("CAPTURE_MEDIA")
    expect(store.topology.subject("cap-1")).toBe("capture.media.cap-1")
  })

  it("stores segments and lists them by channel then index, bytes intact", async () => {
    const id = newSessionId()
    const [big, small, empty] = [new Uint8Array(randomBytes(300_000)), randomBytes(10), new Uint8Array(0)]
    // Channel ids with `:` and `.`: the object name is encoded by the obj lib.
    await store.put(segment(id, "mic:default", 1, small), small)
    await store.put(segment(id, "display:screen.1", 0, big), big)
    const first = await store.put(segment(id, "mic:default", 0, empty, true), empty)
    expect(first.duplicate).toBe(false)
    expect(first.record.bytes).toBe(0)
    const list = await store.list(id)
    expect(list.map((r) => [r.channel_id, r.index])).toEqual([
      ["display:screen.1", 0],
      ["mic:default", 0],
      ["mic:default", 1],
    ])
    expect(list[0]?.bytes).toBe(300_000)
    expect(digestOf(await store.read(id, "display:screen.1", 0))).toBe(digestOf(big))
    expect((await store.read(id, "mic:default", 0))?.length).toBe(0)
    expect(await store.read(id, "mic:default", 7)).toBeUndefined()
    expect(await store.list(newSessionId())).toEqual([])
    // One segment's record, from its object alone.
    expect(await store.record(id, "mic:default", 1)).toEqual(list[2])
    expect(await store.record(id, "mic:default", 7)).toBeUndefined()
  })

  it("writes a megabyte segment in 512 KiB chunks and reads it back verified", async () => {
    const id = newSessionId()
    const video = new Uint8Array(randomBytes(1_200_000))
    await store.put(segment(id, "display:1", 0, video), video)
    const objects = await new Objm(jetstream(nc)).open(store.topology.bucket)
    const info = await objects.info(segmentObjectName(id, "display:1", 0))
    expect(info?.chunks).toBe(Math.ceil(video.length / OBJECT_CHUNK_BYTES))
    // The object carries its whole record from the start, and is marked published soon after.
    expect(JSON.parse(info?.metadata?.record ?? "{}")).toMatchObject({ index: 0, bytes: video.length })
    await vi.waitFor(
      async () =>
        expect((await objects.info(segmentObjectName(id, "display:1", 0)))?.metadata?.published).toBe("true"),
      { timeout: 10_000 },
    )
    expect(getSha256Backend()).toBe("native")
    expect(digestOf(await store.read(id, "display:1", 0))).toBe(digestOf(video))
  })

  it("answers a repeated put as a duplicate, refuses other bytes under the same key", async () => {
    const id = newSessionId()
    const data = randomBytes(1000)
    const first = await store.put(segment(id, "mic:default", 0, data), data)
    const again = await store.put(segment(id, "mic:default", 0, data), data)
    expect(again).toEqual({ duplicate: true, record: first.record })
    const other = randomBytes(1000)
    await expect(store.put(segment(id, "mic:default", 0, other), other)).rejects.toBeInstanceOf(
      SegmentConflict,
    )
    await expect(store.put(segment(id, "mic:default", 1, data), other)).rejects.toBeInstanceOf(
      SegmentChecksumMismatch,
    )
    expect(await store.list(id)).toHaveLength(1)
  })

  it("stores one record when the same segment is put concurrently", async () => {
    const id = newSessionId()
    const data = randomBytes(200_000)
    const results = await Promise.all(
      Array.from({ length: 4 }, () => store.put(segment(id, "display:1", 0, data), data)),
    )
    expect(results.filter((r) => !r.duplicate).length).toBeLessThanOrEqual(1)
    expect(await store.list(id)).toHaveLength(1)
    const jsm = await jetstreamManager(nc)
    const info = await jsm.streams.info(store.topology.stream, {
      subjects_filter: store.topology.subject(id),
    })
    expect(info.state.subjects?.[store.topology.subject(id)]).toBe(1)
  })

  it("completes the record on retry after a crash between storing the bytes and publishing", async () => {
    const id = newSessionId()
    const data = randomBytes(5000)
    const input = segment(id, "system_audio:default", 3, data, true)
    // What a writer killed right after the object put leaves behind: the object, no record.
    const objects = await new Objm(nc).open(store.topology.bucket)
    const record = { ...input, bytes: data.length, stored_at: new Date().toISOString() }
    await objects.putBlob(
      {
        name: segmentObjectName(id, input.channel_id, input.index),
        metadata: { sha256: input.sha256, record: JSON.stringify(record) },
      },
      data,
    )
    expect(await store.list(id)).toEqual([])
    const retry = await store.put(input, data)
    expect(retry).toEqual({ duplicate: true, record })
    expect(await store.list(id)).toEqual([record])
    // A further retry (even past the dedupe window) neither stores nor publishes again.
    expect((await store.put(input, data)).duplicate).toBe(true)
    expect(await store.list(id)).toEqual([record])
    const jsm = await jetstreamManager(nc)
    const info = await jsm.streams.info(store.topology.stream, {
      subjects_filter: store.topology.subject(id),
    })
    expect(info.state.subjects?.[store.topology.subject(id)]).toBe(1)
  })

  it("deletes a channel's objects, including an unrecorded tail, and keeps the records", async () => {
    const id = newSessionId()
    for (let i = 0; i < 3; i++) {
      const data = randomBytes(100)
      await store.put(segment(id, "system_audio:default", i, data), data)
    }
    const keep = new Uint8Array(randomBytes(100))
    await store.put(segment(id, "mic:default", 0, keep), keep)
    const objects = await new Objm(nc).open(store.topology.bucket)
    await objects.putBlob({ name: segmentObjectName(id, "system_audio:default", 3) }, randomBytes(10))
    expect(await store.deleteChannel(id, "system_audio:default")).toBe(4)
    expect(await store.read(id, "system_audio:default", 0)).toBeUndefined()
    expect(await store.read(id, "system_audio:default", 3)).toBeUndefined()
    expect(await store.record(id, "system_audio:default", 0)).toBeUndefined()
    expect(await store.read(id, "mic:default", 0)).toEqual(keep)
    expect(await store.list(id)).toHaveLength(4)
    expect(await store.deleteChannel(id, "system_audio:default")).toBe(0)
  })

  it("streams a body chunk by chunk, and stores nothing of a body that fails or does not match", async () => {
    const id = newSessionId()
    const data = new Uint8Array(randomBytes(3 * OBJECT_CHUNK_BYTES + 1234))
    const chunks = async function* (bytes: Uint8Array, failAt?: number) {
      for (let offset = 0; offset < bytes.length; offset += 64 * 1024) {
        if (failAt !== undefined && offset >= failAt) throw new Error("the client went away")
        yield bytes.subarray(offset, offset + 64 * 1024)
      }
    }
    const objects = await new Objm(jetstream(nc)).open(store.topology.bucket)
    const jsm = await jetstreamManager(nc)
    const objectStream = `OBJ_${store.topology.bucket}`
    const messagesBefore = (await jsm.streams.info(objectStream)).state.messages

    await expect(
      store.putStream(segment(id, "display:1", 0, data), chunks(data, 2 * OBJECT_CHUNK_BYTES)),
    ).rejects.toThrow("the client went away")
    await expect(
      store.putStream(
        { ...segment(id, "display:1", 0, data), sha256: sha256Hex(randomBytes(8)) },
        chunks(data),
      ),
    ).rejects.toBeInstanceOf(SegmentChecksumMismatch)
    expect(await objects.info(segmentObjectName(id, "display:1", 0))).toBeNull()
    // The chunks written before the refusal were purged with it.
    expect((await jsm.streams.info(objectStream)).state.messages).toBe(messagesBefore)

    const stored = await store.putStream(segment(id, "display:1", 0, data), chunks(data))
    expect(stored).toMatchObject({ duplicate: false, record: { bytes: data.length } })
    expect(digestOf(await store.read(id, "display:1", 0))).toBe(digestOf(data))
    expect(await store.putStream(segment(id, "display:1", 0, data), chunks(data))).toEqual({
      duplicate: true,
      record: stored.record,
    })
    expect(await store.list(id)).toEqual([stored.record])
  })

  it("uses the prefix for every name", async () => {
    const other = await MediaStore.open(nc, { prefix: "alt" })
    expect(other.topology).toMatchObject({ bucket: "alt_media", stream: "ALT_MEDIA" })
    expect(other.topology.subject("cap-x")).toBe("alt.media.cap-x")
    const id = newSessionId()
    const data = randomBytes(10)
    await other.put(segment(id, "mic:default", 0, data), data)
    expect(await other.list(id)).toHaveLength(1)
    expect(await store.list(id)).toHaveLength(0)
  })

  it("skips a record on the stream that does not decode and reads the ones after it", async () => {
    const logs: Array<string> = []
    const logged = await MediaStore.open(nc, { log: (message) => logs.push(message) })
    const id = newSessionId()
    const first = randomBytes(10)
    await logged.put(segment(id, "mic:default", 0, first), first)
    const subject = logged.topology.subject(id)
    await jetstream(nc).publish(subject, "not json {")
    await jetstream(nc).publish(
      subject,
      JSON.stringify({ session_id: id, channel_id: "mic:default", index: -1 }),
    )
    const second = randomBytes(10)
    await logged.put(segment(id, "mic:default", 1, second, true), second)
    expect((await logged.list(id)).map((record) => [record.index, record.final])).toEqual([
      [0, false],
      [1, true],
    ])
    expect(logs.filter((line) => line.includes("does not decode"))).toHaveLength(2)
  })
})
