/**
 * Opening a JetStream Object Store bucket the way media wants it: objects are megabytes, so
 * hashing is native and chunks are large; and `ObjectWriter`, which creates objects in it with
 * as few round trips as the guarantees allow.
 *
 * `@nats-io/obj` hashes every object it writes and reads with a pure-JS SHA-256 by default (safe
 * in browsers), which was half of the gateway's CPU while storing segments; and it writes 128 KiB
 * chunks, each a publish waiting for its ack (nine round trips for a 1 MB video segment).
 */
import { createRacing, isWrongLastSequence, JetStreamPublisher } from "@capture/jetstream"
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream"
import { type ObjectStore, type ObjectStoreMeta, Objm, StorageType, setSha256Backend } from "@nats-io/obj"
import { type NatsConnection, nuid } from "@nats-io/transport-node"

/** Chunk size for objects written through `objectMeta`: well under the default 1 MiB max_payload. */
export const OBJECT_CHUNK_BYTES = 512 * 1024

/** Chunks of one object published and not yet acknowledged, at most. */
export const CHUNKS_IN_FLIGHT = 4

/** Creates (if missing) and opens a file-backed bucket, with Node's native SHA-256 for the process. */
export const openObjectBucket = async (
  js: JetStreamClient,
  bucket: string,
  options: { readonly replicas: number },
): Promise<ObjectStore> => {
  // Process-wide in @nats-io/obj: every bucket this process opens hashes natively.
  setSha256Backend("native")
  return createRacing(() =>
    new Objm(js).create(bucket, { replicas: options.replicas, storage: StorageType.File }),
  )
}

/** An object's meta with large chunks (the server's max_payload still caps them). */
export const objectMeta = (name: string, metadata?: Record<string, string>): ObjectStoreMeta => ({
  name,
  ...(metadata === undefined ? {} : { metadata }),
  options: { max_chunk_size: OBJECT_CHUNK_BYTES },
})

/**
 * An object's meta message as the bucket stores it (`@nats-io/obj`'s layout, which its readers
 * expect), with `revision`, the message's stream sequence.
 */
export interface StoredObject {
  readonly name: string
  readonly description: string
  readonly options: { readonly max_chunk_size: number }
  readonly metadata: Readonly<Record<string, string>>
  readonly bucket: string
  readonly nuid: string
  readonly size: number
  readonly chunks: number
  readonly mtime: string
  /** `SHA-256=` and the base64url (padded) digest of the bytes; empty once deleted. */
  readonly digest: string
  readonly deleted: boolean
  readonly revision: number
}

/** The Object Store digest of bytes whose hex SHA-256 is `sha256`. */
export const objectDigest = (sha256: string): string =>
  `SHA-256=${Buffer.from(sha256, "hex").toString("base64").replaceAll("+", "-").replaceAll("/", "_")}`

const encoder = new TextEncoder()

/**
 * Creates objects in one bucket, readable by `@nats-io/obj`, in the fewest round trips: the
 * chunks are published back to back (`CHUNKS_IN_FLIGHT` unacknowledged at most) over one reply
 * subscription, and the meta, which makes the object visible, goes out once every chunk is
 * stored, guarded to be the name's first (so of writers racing for a name one wins, and nobody
 * sees a half-written object). The caller hashes the bytes (it checks them anyway) and vouches
 * for the digest.
 */
export class ObjectWriter {
  private readonly stream: string

  constructor(
    nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    readonly bucket: string,
    private readonly publisher = new JetStreamPublisher(nc),
  ) {
    this.stream = `OBJ_${bucket}`
  }

  /** The subject of an object's meta (its name base64url-encoded with padding, as `@nats-io/obj` does). */
  private metaSubject(name: string): string {
    return `$O.${this.bucket}.M.${btoa(name).replaceAll("+", "-").replaceAll("/", "_")}`
  }

  /** The object's meta as stored (also a deleted one's), or null when no object had that name. */
  async info(name: string): Promise<StoredObject | null> {
    const message = await this.jsm.streams.getMessage(this.stream, { last_by_subj: this.metaSubject(name) })
    if (message === null) return null
    return { ...message.json<Omit<StoredObject, "revision">>(), revision: message.seq }
  }

  /**
   * Writes `body` as the object `name` unless the name is taken, and then makes it visible with
   * the metadata and digest `finish` gives for its size (called once every byte is read; it may
   * throw to refuse them). Answers `"taken"` when another object has the name (deleted or not).
   * Whatever fails or is refused, the chunks written are purged and nothing becomes visible.
   */
  async create(
    name: string,
    body: AsyncIterable<Uint8Array>,
    finish: (size: number) => {
      readonly metadata: Readonly<Record<string, string>>
      readonly sha256: string
    },
  ): Promise<StoredObject | "taken"> {
    const id = nuid.next()
    const chunkSubject = `$O.${this.bucket}.C.${id}`
    const chunks = new ChunkPublisher(this.publisher, chunkSubject)
    try {
      for await (const piece of body) await chunks.write(piece)
      await chunks.end()
      const { metadata, sha256 } = finish(chunks.size)
      const meta: Omit<StoredObject, "revision"> = {
        name,
        description: "",
        options: { max_chunk_size: OBJECT_CHUNK_BYTES },
        metadata,
        bucket: this.bucket,
        nuid: id,
        size: chunks.size,
        chunks: chunks.count,
        mtime: new Date().toISOString(),
        digest: objectDigest(sha256),
        deleted: false,
      }
      const ack = await this.publisher.publish(
        this.metaSubject(name),
        encoder.encode(JSON.stringify(meta)),
        // Revision 0: the name must be free, so of two racing writers one wins.
        { lastSubjectSequence: 0, rollUpSubject: true },
      )
      return { ...meta, revision: ack.seq }
    } catch (error) {
      await chunks.abandon()
      // A purge that fails leaves unreachable chunks, not a visible object: the error that
      // stopped the write is the one to tell.
      if (chunks.count > 0)
        await this.jsm.streams.purge(this.stream, { filter: chunkSubject }).catch(() => {})
      if (isWrongLastSequence(error)) return "taken"
      throw error
    }
  }

  /**
   * Replaces the metadata of `object`, unless its meta moved on since (deleted, or changed by
   * another writer): answers whether it was replaced.
   */
  async setMetadata(object: StoredObject, metadata: Readonly<Record<string, string>>): Promise<boolean> {
    const { revision, ...meta } = object
    try {
      await this.publisher.publish(
        this.metaSubject(object.name),
        encoder.encode(JSON.stringify({ ...meta, metadata })),
        { lastSubjectSequence: revision, rollUpSubject: true },
      )
      return true
    } catch (error) {
      if (isWrongLastSequence(error)) return false
      throw error
    }
  }
}

/**
 * One object's chunks: the bytes gathered into `OBJECT_CHUNK_BYTES` pieces (copied once, into a
 * chunk of its exact size), each published as it fills while the next is read, at most
 * `CHUNKS_IN_FLIGHT` waiting for their acks.
 */
class ChunkPublisher {
  size = 0
  count = 0
  private pending: Array<Uint8Array> = []
  private pendingBytes = 0
  private readonly inFlight = new Set<Promise<void>>()
  private failure: { readonly error: unknown } | undefined

  constructor(
    private readonly publisher: JetStreamPublisher,
    private readonly subject: string,
  ) {}

  async write(piece: Uint8Array): Promise<void> {
    let rest = piece
    while (this.pendingBytes + rest.length >= OBJECT_CHUNK_BYTES) {
      const taken = OBJECT_CHUNK_BYTES - this.pendingBytes
      this.pending.push(rest.subarray(0, taken))
      this.pendingBytes += taken
      rest = rest.subarray(taken)
      await this.send()
    }
    if (rest.length > 0) {
      this.pending.push(rest)
      this.pendingBytes += rest.length
    }
  }

  /** Publishes what is left and waits until every chunk is acknowledged. */
  async end(): Promise<void> {
    if (this.pendingBytes > 0) await this.send()
    await Promise.all(this.inFlight)
    this.throwIfFailed()
  }

  /** Waits for the chunks in flight, whatever their fate (so a purge after this covers them). */
  async abandon(): Promise<void> {
    await Promise.all(this.inFlight)
  }

  private async send(): Promise<void> {
    while (this.inFlight.size >= CHUNKS_IN_FLIGHT) await Promise.race(this.inFlight)
    this.throwIfFailed()
    const payload = Buffer.concat(this.pending, this.pendingBytes)
    this.size += this.pendingBytes
    this.count++
    this.pending = []
    this.pendingBytes = 0
    const acked: Promise<void> = this.publisher.publish(this.subject, payload).then(
      () => void this.inFlight.delete(acked),
      (error: unknown) => {
        this.failure ??= { error }
        this.inFlight.delete(acked)
      },
    )
    this.inFlight.add(acked)
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure.error
  }
}
