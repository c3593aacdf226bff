/**
 * The media store: recorded segments' bytes in a JetStream Object Store, and one record per
 * segment on a stream (one subject per session) that the muxer consumes as segments arrive.
 *
 * A segment is written in three steps: the bytes (with the record in the object's metadata),
 * then the record on the stream (`Nats-Msg-Id` = key), then a `published` mark on the object.
 * The bytes stream through: a body is never held whole, only the chunks being written
 * (`ObjectWriter`: pipelined, a few in flight). The object decides who won a key
 * (compare-and-set on its creation, which makes it visible once every chunk is stored); a retry
 * after a crash at any step finds the object and only finishes what is left, so nothing is lost
 * or stored twice. A new segment costs three waits on JetStream: its chunks, its object's meta,
 * its record; the `published` mark is sent without waiting (a retry that finds it missing looks
 * at the stream instead).
 * A record on the stream that does not decode is logged and skipped by every read.
 */
import { createHash } from "node:crypto"
import {
  ensureStream,
  isMessageNotFound,
  JetStreamPublisher,
  type SpanParent,
  traceparentOf,
} from "@capture/jetstream"
import { decodeJson, decodeUnknown, MediaSegment } from "@capture/protocol"
import {
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream"
import type { ObjectStore } from "@nats-io/obj"
import type { NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import { ObjectWriter, openObjectBucket, type StoredObject } from "./ObjectBucket.js"

/** Options of `MediaStore.open`. */
export interface MediaStoreOptions {
  /** Replicas of the bucket and the stream: 1 on a single server, 3 on a cluster. */
  readonly replicas?: number
  /** Prefix of the bucket (`<prefix>_media`), stream (`<PREFIX>_MEDIA`) and subjects. */
  readonly prefix?: string
  /** Where a record that does not decode is reported. */
  readonly log?: (message: string) => void
}

/** Where segments live in NATS. */
export interface MediaTopology {
  /** The Object Store bucket of segment bytes: `capture_media`. */
  readonly bucket: string
  /** The stream of segment records: `CAPTURE_MEDIA`. */
  readonly stream: string
  /** Every record subject: `capture.media.>`. */
  readonly subjects: string
  /** One session's record subject: `capture.media.<session_id>`. */
  subject(sessionId: string): string
}

/** A segment record without what the store fills in. */
export type SegmentInput = Omit<MediaSegment, "stored_at" | "bytes">

/** What `put` returns. */
export interface PutResult {
  /** True when the bytes were already stored by an earlier call: nothing was stored again. */
  readonly duplicate: boolean
  /** The stored record (the first writer's, for a duplicate). */
  readonly record: MediaSegment
}

/** The key already holds a segment with other bytes. */
export class SegmentConflict extends Error {
  readonly _tag = "SegmentConflict"
  constructor(
    readonly key: string,
    readonly storedSha256: string,
    readonly sha256: string,
  ) {
    super(`segment ${key} is already stored with sha256 ${storedSha256}, not ${sha256}`)
  }
}

/** The bytes do not hash to the record's sha256. */
export class SegmentChecksumMismatch extends Error {
  readonly _tag = "SegmentChecksumMismatch"
  constructor(
    readonly key: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`segment ${key}: sha256 of the bytes is ${actual}, the record says ${expected}`)
  }
}

/** A record on the stream that this version cannot decode. */
export class UnreadableSegmentRecord extends Error {
  readonly _tag = "UnreadableSegmentRecord"
  constructor(
    readonly streamSequence: number,
    readonly reason: string,
  ) {
    super(`media record at stream sequence ${streamSequence} is unreadable: ${reason}`)
  }
}

/** The key of a segment: `<session_id>/<channel_id>/<index>` (also its `Nats-Msg-Id`). */
export const segmentKey = (sessionId: string, channelId: string, index: number): string =>
  `${sessionId}/${channelId}/${index}`

/** The object name of a segment: `<session_id>/<channel_id>/<index, 8 digits>.ts`. */
export const segmentObjectName = (sessionId: string, channelId: string, index: number): string =>
  `${sessionId}/${channelId}/${String(index).padStart(8, "0")}.ts`

/** Hex SHA-256 of bytes. */
export const sha256Hex = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex")

const decodeSegment = decodeUnknown(MediaSegment)
const decodeSegmentJson = decodeJson(MediaSegment)

/** Decodes a record from a stream message's JSON; throws `UnreadableSegmentRecord`. */
export const decodeSegmentRecord = (json: unknown, streamSequence = 0): MediaSegment => {
  const decoded = decodeSegment(json)
  if (Result.isFailure(decoded)) throw new UnreadableSegmentRecord(streamSequence, decoded.failure.message)
  return decoded.success
}

const encoder = new TextEncoder()
// Metadata keys on a segment object.
const META_SHA = "sha256"
const META_RECORD = "record"
const META_PUBLISHED = "published"

/** Recorded segments: bytes in the Object Store, records on the stream. */
export class MediaStore {
  private constructor(
    readonly topology: MediaTopology,
    private readonly objects: ObjectStore,
    private readonly writer: ObjectWriter,
    private readonly publisher: JetStreamPublisher,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly log: (message: string) => void,
  ) {}

  /** Creates (if missing) and opens the bucket and the stream. Safe from many processes at once. */
  static async open(nc: NatsConnection, options: MediaStoreOptions = {}): Promise<MediaStore> {
    const prefix = options.prefix ?? "capture"
    const replicas = options.replicas ?? 1
    const topology: MediaTopology = {
      bucket: `${prefix}_media`,
      stream: `${prefix.toUpperCase()}_MEDIA`,
      subjects: `${prefix}.media.>`,
      subject: (sessionId) => `${prefix}.media.${sessionId}`,
    }
    const js = jetstream(nc)
    const jsm = await jetstreamManager(nc)
    await ensureStream(jsm, { name: topology.stream, subjects: [topology.subjects], replicas })
    const objects = await openObjectBucket(js, topology.bucket, { replicas })
    // One reply subscription for every ack: the chunks', the metas' and the records'.
    const publisher = new JetStreamPublisher(nc)
    const writer = new ObjectWriter(nc, jsm, topology.bucket, publisher)
    return new MediaStore(topology, objects, writer, publisher, js, jsm, options.log ?? (() => {}))
  }

  /**
   * Stores the bytes, then publishes the record (`Nats-Msg-Id` = `<session>/<channel>/<index>`).
   * Idempotent: the same key with the same sha256 gives `{ duplicate: true }` without storing
   * again (and completes the record if an earlier call crashed before publishing it); the same
   * key with other bytes throws `SegmentConflict`; bytes that do not match `sha256` throw
   * `SegmentChecksumMismatch`; a record that does not decode throws the protocol's `CaptureError`
   * (`invalid_field`, naming the field).
   */
  async put(input: SegmentInput, data: Uint8Array): Promise<PutResult> {
    return this.putStream(input, [data])
  }

  /**
   * `put` for bytes that arrive in chunks (an HTTP body): they go to the Object Store as they
   * come, a few chunks in flight, and their sha256 is checked at the end; a mismatch stores
   * nothing. An error `body` raises (the caller's own checks of the bytes) is thrown as is, and
   * nothing is stored. The record carries `parent`'s trace context (the upload's request) to its
   * consumers.
   */
  async putStream(
    input: SegmentInput,
    body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    parent?: SpanParent,
  ): Promise<PutResult> {
    const key = segmentKey(input.session_id, input.channel_id, input.index)
    const name = segmentObjectName(input.session_id, input.channel_id, input.index)
    const sha256 = input.sha256.toLowerCase()
    // Decode at the edge: a record that would not read back (NaN, a bad id) is refused here.
    const decoded = decodeSegment({ ...input, sha256, bytes: 0, stored_at: new Date().toISOString() })
    if (Result.isFailure(decoded)) throw decoded.failure
    const bytes = new CheckedBytes(body, key, sha256)
    let record = decoded.success
    // No lookup first: a key is new but for retries, which find out when the name is taken.
    const created = await this.writer.create(name, bytes, (size) => {
      record = { ...decoded.success, bytes: size }
      return { sha256, metadata: { [META_SHA]: sha256, [META_RECORD]: JSON.stringify(record) } }
    })
    if (created === "taken") {
      // Stored before (or by a writer racing this one): these bytes were all read and checked.
      const winner = await this.writer.info(name)
      if (winner === null) throw new Error(`segment ${key}: the object that took its name is gone`)
      return this.settleStored(winner, key, input, bytes.length)
    }
    await this.publishRecord(key, record, parent)
    // Not waited for: without the mark, a retry looks at the stream instead.
    void this.markPublished(created, record)
    return { duplicate: false, record }
  }

  /** A put of a key already stored: a duplicate when the bytes are the same, else a conflict. */
  private async settleStored(
    existing: StoredObject,
    key: string,
    input: SegmentInput,
    length: number,
  ): Promise<PutResult> {
    const sha256 = input.sha256.toLowerCase()
    const stored = existing.metadata?.[META_SHA]
    if (stored !== sha256) throw new SegmentConflict(key, stored ?? "(none)", sha256)
    const record = recordOf(existing, input, length)
    if (existing.metadata?.[META_PUBLISHED] !== "true") await this.completeRecord(existing, key, record)
    return { duplicate: true, record }
  }

  /** Every record of a session, by channel then index (one per key). */
  async list(sessionId: string): Promise<ReadonlyArray<MediaSegment>> {
    const byKey = new Map<string, MediaSegment>()
    for await (const { record } of this.readRecords(sessionId)) {
      const key = segmentKey(record.session_id, record.channel_id, record.index)
      if (!byKey.has(key)) byKey.set(key, record)
    }
    return [...byKey.values()].sort((a, b) =>
      a.channel_id === b.channel_id ? a.index - b.index : a.channel_id < b.channel_id ? -1 : 1,
    )
  }

  /** Whether the key holds a segment (even one whose bytes were deleted): a put of it stores nothing new. */
  async has(sessionId: string, channelId: string, index: number): Promise<boolean> {
    return (await this.writer.info(segmentObjectName(sessionId, channelId, index))) !== null
  }

  /** A segment's bytes, or `undefined` when it is not stored (never was, or deleted). */
  async read(sessionId: string, channelId: string, index: number): Promise<Uint8Array | undefined> {
    const data = await this.objects.getBlob(segmentObjectName(sessionId, channelId, index))
    // A plain Uint8Array view whatever the lib hands back (a Buffer for one-chunk objects).
    return data === null ? undefined : new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  }

  /**
   * A stored segment's record, read from its object in one lookup (no walk of the record stream);
   * `undefined` when the segment is not stored (never was, or its bytes were dropped).
   */
  async record(sessionId: string, channelId: string, index: number): Promise<MediaSegment | undefined> {
    const info = await this.writer.info(segmentObjectName(sessionId, channelId, index))
    const json = info === null || info.deleted ? undefined : info.metadata?.[META_RECORD]
    if (json === undefined) return undefined
    try {
      return decodeSegmentRecord(JSON.parse(json))
    } catch {
      return undefined
    }
  }

  /**
   * Drops the bytes of one channel's segments (a `store: false` channel once the session ended);
   * the records stay. Returns how many objects were deleted.
   */
  async deleteChannel(sessionId: string, channelId: string): Promise<number> {
    const indexes = (await this.list(sessionId))
      .filter((record) => record.channel_id === channelId)
      .map((record) => record.index)
    let deleted = 0
    const drop = async (index: number): Promise<boolean> => {
      const name = segmentObjectName(sessionId, channelId, index)
      const info = await this.objects.info(name)
      if (info === null) return false
      if (!info.deleted) {
        await this.objects.delete(name)
        deleted++
      }
      return true
    }
    for (const index of indexes) await drop(index)
    // A writer that crashed before publishing leaves bytes without a record, after the last one.
    for (let index = indexes.length === 0 ? 0 : Math.max(...indexes) + 1; await drop(index); index++) {}
    return deleted
  }

  /**
   * A session's records in stream order, with their stream sequences (unreadable ones logged and
   * skipped); only those after `afterSequence` when given, so a reader that keeps what it read
   * before reads each record once.
   */
  async *readRecords(
    sessionId: string,
    afterSequence = 0,
  ): AsyncGenerator<{ readonly record: MediaSegment; readonly streamSequence: number }> {
    const subject = this.topology.subject(sessionId)
    let last: number
    try {
      last = (await this.jsm.streams.getMessage(this.topology.stream, { last_by_subj: subject }))?.seq ?? 0
    } catch (error) {
      if (isMessageNotFound(error)) return
      throw error
    }
    if (last <= afterSequence) return
    const consumer = await this.js.consumers.get(this.topology.stream, {
      // One subject as a string: nats-server 2.9 has filter_subject only.
      filter_subjects: subject,
      ...(afterSequence === 0
        ? { deliver_policy: DeliverPolicy.All }
        : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: afterSequence + 1 }),
    })
    const messages = await consumer.consume({ max_messages: 1024 })
    try {
      for await (const message of messages) {
        const record = decodeSegmentJson(message.data)
        if (Result.isSuccess(record)) yield { record: record.success, streamSequence: message.seq }
        else
          this.log(
            `media: record ${message.seq} on ${message.subject} does not decode (${record.failure.message}); skipped`,
          )
        if (message.seq >= last) break
      }
    } finally {
      await messages.close()
      await consumer.delete().catch(() => undefined)
    }
  }

  /** Publishes a record whose bytes an earlier call stored, unless the stream already has it. */
  private async completeRecord(object: StoredObject, key: string, record: MediaSegment): Promise<void> {
    // Rare path (a crash or a race between storing and marking): beyond the two-minute dedupe
    // window only the stream itself can say whether the record went out, so look.
    let found = false
    for await (const stored of this.readRecords(record.session_id)) {
      const r = stored.record
      if (segmentKey(r.session_id, r.channel_id, r.index) === key) {
        found = true
        break
      }
    }
    if (!found) await this.publishRecord(key, record)
    await this.markPublished(object, record)
  }

  private async publishRecord(key: string, record: MediaSegment, parent?: SpanParent): Promise<void> {
    await this.publisher.publish(
      this.topology.subject(record.session_id),
      encoder.encode(JSON.stringify(record)),
      { msgId: key },
      parent === undefined ? undefined : traceparentOf(parent),
    )
  }

  /** Marks the object's record published, unless the object changed since `object` (deleted, marked). */
  private async markPublished(object: StoredObject, record: MediaSegment): Promise<void> {
    if (object.deleted || object.metadata[META_PUBLISHED] === "true") return
    try {
      await this.writer.setMetadata(object, {
        ...object.metadata,
        [META_RECORD]: JSON.stringify(record),
        [META_PUBLISHED]: "true",
      })
    } catch {
      // Only an optimisation: without the mark, a retry looks at the stream instead.
    }
  }
}

/**
 * The record stored with an object (falls back to the caller's input for a foreign object). Its
 * size is the object's: a writer that stopped before the `published` mark left its record
 * without one.
 */
const recordOf = (info: StoredObject, input: SegmentInput, bytes: number): MediaSegment => {
  const size = info.size > 0 ? info.size : bytes
  const json = info.metadata?.[META_RECORD]
  if (json !== undefined) {
    try {
      const record = decodeSegmentRecord(JSON.parse(json))
      return record.bytes === size || info.size === 0 ? record : { ...record, bytes: size }
    } catch {
      // fall through
    }
  }
  return { ...input, bytes: size, stored_at: info.mtime }
}

/**
 * A body's bytes, counted and hashed as they pass, read once: the end of the bytes throws
 * `SegmentChecksumMismatch` when they do not hash to the expected sha256.
 */
class CheckedBytes {
  length = 0
  private readonly hash = createHash("sha256")

  constructor(
    private readonly body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    private readonly key: string,
    private readonly sha256: string,
  ) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for await (const chunk of this.body) {
      this.hash.update(chunk)
      this.length += chunk.length
      yield chunk
    }
    const actual = this.hash.digest("hex")
    if (actual !== this.sha256) throw new SegmentChecksumMismatch(this.key, this.sha256, actual)
  }
}
