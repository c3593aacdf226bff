/**
 * The exports bucket: the JetStream Object Store `<prefix>_exports` that the muxer writes and
 * every gateway reads. Objects are named by what went into them and written once, so two muxers
 * making the same object store it once and readers never see it change.
 *
 * | objects                                  | what                                                   |
 * | ---------------------------------------- | ------------------------------------------------------ |
 * | `pieces/<session>/…`                     | the muxer's pieces: fMP4 fragments and their inits      |
 * | `videos/<video id>/manifest.json`        | an export's manifest (`ExportManifest`): its metadata   |
 * |                                          | and how every file is assembled from pieces             |
 * | `videos/<video id>/…init.mp4`            | the inits of an export's files                          |
 * | `assets/<asset id>.json`                 | which export a raw asset id belongs to                  |
 */

import { isWrongLastSequence } from "@capture/jetstream"
import type { CaptureError } from "@capture/protocol"
import { jetstream } from "@nats-io/jetstream"
import type { ObjectStore } from "@nats-io/obj"
import type { NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import { objectMeta, openObjectBucket } from "./ObjectBucket.js"

/** Options of `ExportBucket.open`. */
export interface ExportBucketOptions {
  /** Prefix of the bucket: `<prefix>_exports` (default `capture`). */
  readonly prefix?: string
  /** Replicas of the bucket: 1 on a single server, 3 on a cluster. */
  readonly replicas?: number
  /** Where a JSON document that does not decode is reported. */
  readonly log?: (message: string) => void
}

const encoder = new TextEncoder()

/** Objects in the exports bucket, each written once. */
export class ExportBucket {
  protected constructor(
    /** The Object Store bucket's name: `capture_exports`. */
    readonly bucket: string,
    private readonly objects: ObjectStore,
    protected readonly log: (message: string) => void,
  ) {}

  /** Opens (creating if missing) the exports bucket. Safe from many processes at once. */
  static async open(nc: NatsConnection, options: ExportBucketOptions = {}): Promise<ExportBucket> {
    const { bucket, objects } = await ExportBucket.openObjects(nc, options)
    return new ExportBucket(bucket, objects, options.log ?? (() => {}))
  }

  /** The bucket's name and Object Store, for stores built on it (the muxer's). */
  protected static async openObjects(
    nc: NatsConnection,
    options: ExportBucketOptions,
  ): Promise<{ readonly bucket: string; readonly objects: ObjectStore }> {
    const bucket = `${options.prefix ?? "capture"}_exports`
    const objects = await openObjectBucket(jetstream(nc), bucket, { replicas: options.replicas ?? 1 })
    return { bucket, objects }
  }

  /**
   * Stores an object unless one with that name exists (names say what is in them), and returns
   * the size of what is stored: another writer's object of that name wins, and it may differ in
   * its bytes where an encoder's output does (the same window of mixed audio, encoded twice).
   */
  async putObject(name: string, data: Uint8Array): Promise<number> {
    const existing = await this.objects.info(name)
    if (existing !== null) return existing.size
    return this.putNew(name, data)
  }

  /**
   * `putObject` without looking first: for an object the caller has no reason to think stored (a
   * piece its index lacks). One stored meanwhile wins the compare-and-set, and this write's chunks
   * are purged by the object store.
   */
  protected async putNew(name: string, data: Uint8Array): Promise<number> {
    try {
      await this.objects.putBlob(objectMeta(name), data, { previousRevision: 0 })
      return data.length
    } catch (error) {
      // Another writer stored it first.
      if (!isWrongLastSequence(error)) throw error
      return (await this.objects.info(name))?.size ?? data.length
    }
  }

  /** An object's bytes, or `undefined` when there is none of that name. */
  async getObject(name: string): Promise<Uint8Array | undefined> {
    const data = await this.objects.getBlob(name)
    return data === null ? undefined : new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  }

  /** Stores a JSON document (a manifest, an asset index entry) as an object. */
  async putJson(name: string, value: unknown): Promise<void> {
    await this.putObject(name, encoder.encode(JSON.stringify(value)))
  }

  /**
   * A JSON document stored with `putJson`, decoded with `decode` (the protocol's `decodeJson` of
   * its schema); `undefined` when there is none, or (logged) when it does not decode.
   */
  async getJson<A>(
    name: string,
    decode: (data: Uint8Array) => Result.Result<A, CaptureError>,
  ): Promise<A | undefined> {
    const data = await this.getObject(name)
    if (data === undefined) return undefined
    const decoded = decode(data)
    if (Result.isSuccess(decoded)) return decoded.success
    this.log(`exports: ${name} does not decode (${decoded.failure.message}); read as absent`)
    return undefined
  }
}
