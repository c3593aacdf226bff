/**
 * Opening a JetStream Object Store bucket the way media wants it: objects are megabytes, so
 * hashing is native and chunks are large.
 *
 * `@nats-io/obj` hashes every object it writes and reads with a pure-JS SHA-256 by default (safe
 * in browsers), which was half of the gateway's CPU while storing segments; and it writes 128 KiB
 * chunks, each a publish waiting for its ack (nine round trips for a 1 MB video segment).
 */
import { createRacing } from "@capture/jetstream"
import type { JetStreamClient } from "@nats-io/jetstream"
import { type ObjectStore, type ObjectStoreMeta, Objm, StorageType, setSha256Backend } from "@nats-io/obj"

/** Chunk size for objects written through `objectMeta`: well under the default 1 MiB max_payload. */
export const OBJECT_CHUNK_BYTES = 512 * 1024

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
