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
 * | `pieces/<session>/manifest/<hash>.json`  | chunks of a manifest's parts, named by their content    |
 * | `videos/<video id>/…init.mp4`            | the inits of an export's files                          |
 * | `assets/<asset id>.json`                 | which export a raw asset id belongs to                  |
 */

import { isWrongLastSequence } from "@capture/jetstream"
import { type CaptureError, decodeJson } from "@capture/protocol"
import { jetstream } from "@nats-io/jetstream"
import type { ObjectStore } from "@nats-io/obj"
import type { NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import {
  MANIFEST_CHUNK_PARTS,
  type Manifest,
  ManifestChunkParts,
  type ManifestFile,
  type ManifestPart,
  manifestChunks,
  manifestName,
  type StoredManifest,
} from "./ExportManifest.js"
import { objectMeta, openObjectBucket } from "./ObjectBucket.js"

const decodeChunkParts = decodeJson(ManifestChunkParts)

/** Where an export's manifest chunks go: beside its session's pieces. */
export const manifestChunkPrefix = (sessionId: string): string => `pieces/${sessionId}/manifest`

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
    /** Where a document that does not decode is reported. */
    readonly log: (message: string) => void,
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

  /**
   * Stores chunks of parts not stored yet: those whose names are not in `known` (chunks this
   * process stored before, kept up to date), each looked up first. Returns how many it wrote.
   */
  async putChunks(
    chunks: ReadonlyArray<{ readonly name: string; readonly data: Uint8Array }>,
    known: Set<string>,
  ): Promise<number> {
    const missing = chunks.filter((c) => !known.has(c.name))
    await Promise.all(missing.map((c) => this.putObject(c.name, c.data)))
    for (const c of missing) known.add(c.name)
    return missing.length
  }

  /**
   * Stores an export's manifest: each file's parts in chunks under `chunkPrefix` (those in `known`
   * are not written again), then the manifest that names them, last, so a manifest that reads
   * names only stored chunks. Returns the chunks it wrote.
   */
  async putManifest(
    videoId: string,
    manifest: Manifest,
    chunkPrefix: string,
    known: Set<string> = new Set(),
    /** Parts per chunk (tests: a few, so a short recording has several). */
    chunkParts: number = MANIFEST_CHUNK_PARTS,
  ): Promise<number> {
    const chunked = (file: ManifestFile) => {
      const { parts, ...rest } = file
      const chunks = manifestChunks(parts, chunkPrefix, { size: chunkParts })
      return { stored: { ...rest, chunks: chunks.map(({ name, count }) => ({ name, count })) }, chunks }
    }
    const files = [manifest.video, ...manifest.raw].map(chunked)
    const written = await this.putChunks(
      files.flatMap((f) => f.chunks),
      known,
    )
    const stored: StoredManifest = {
      ...manifest,
      video: (files[0] as (typeof files)[number]).stored,
      raw: files.slice(1).map((f) => f.stored),
    }
    await this.putJson(manifestName(videoId), stored)
    return written
  }

  /** The parts of one manifest chunk, or `undefined` when it is missing or does not decode. */
  chunkParts(name: string): Promise<ReadonlyArray<ManifestPart> | undefined> {
    return this.getJson(name, decodeChunkParts)
  }
}
