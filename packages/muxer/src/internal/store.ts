/**
 * Where the muxer keeps its work in NATS, shared by every instance:
 * - the exports bucket `<prefix>_exports` (`ExportBucket` of `@capture/media`, which lays it out):
 *   pieces (`pieces/<session>/…`), per-video inits and manifests (`videos/<video id>/…`);
 * - the stream `<PREFIX>_MUXER`: the piece index (`<prefix>.muxer.pieces.<session>`, one record per
 *   piece, so the final assembly reads a session's pieces in one pass instead of probing objects)
 *   and export jobs (`<prefix>.muxer.jobs.<session>.<job>`, first writer wins: the video id).
 */
import { createHash } from "node:crypto"
import { ensureStream, isMessageNotFound, isStreamNotFound, isWrongLastSequence } from "@capture/jetstream"
import { ExportBucket, type ExportBucketOptions } from "@capture/media"
import {
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream"
import type { ObjectStore } from "@nats-io/obj"
import type { NatsConnection } from "@nats-io/transport-node"
import type { PieceInfo } from "./plan.js"

const encoder = new TextEncoder()

const isNotFound = (error: unknown): boolean => isMessageNotFound(error) || isStreamNotFound(error)

/** A claimed export: the first muxer to claim a job fixes its video id for every retry. */
export interface ExportJob {
  readonly video_id: string
  readonly session_id: string
  readonly video_channel_id: string | null
  readonly attempt: number
  readonly created_at: string
}

/** A piece record on the index stream. */
export type PieceRecord = PieceInfo & { readonly session_id: string }

export const shortHash = (value: string, length = 16): string =>
  createHash("sha256").update(value).digest("hex").slice(0, length)

/** The exports bucket with the muxer's own stream: the piece index and export job claims. */
export class MuxerStore extends ExportBucket {
  private constructor(
    bucket: string,
    objects: ObjectStore,
    readonly stream: string,
    private readonly prefix: string,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
  ) {
    super(bucket, objects)
  }

  /** Opens (creating if missing) the exports bucket and the muxer's stream. */
  static override async open(nc: NatsConnection, options: ExportBucketOptions = {}): Promise<MuxerStore> {
    const prefix = options.prefix ?? "capture"
    const replicas = options.replicas ?? 1
    const jsm = await jetstreamManager(nc)
    const stream = `${prefix.toUpperCase()}_MUXER`
    await ensureStream(jsm, { name: stream, subjects: [`${prefix}.muxer.>`], replicas, denyDelete: false })
    const { bucket, objects } = await ExportBucket.openObjects(nc, { prefix, replicas })
    return new MuxerStore(bucket, objects, stream, prefix, jetstream(nc), jsm)
  }

  private piecesSubject(sessionId: string): string {
    return `${this.prefix}.muxer.pieces.${sessionId}`
  }

  /** Stores a piece's bytes (if any), then its record on the index. */
  async putPiece(sessionId: string, info: PieceInfo, data: Uint8Array | undefined): Promise<PieceRecord> {
    if (data !== undefined) await this.putObject(info.name, data)
    const record: PieceRecord = { ...info, session_id: sessionId }
    await this.js.publish(this.piecesSubject(sessionId), encoder.encode(JSON.stringify(record)), {
      msgID: `${sessionId}/${info.key}`.slice(0, 250),
    })
    return record
  }

  /** Every piece recorded for a session, by key (the latest record wins). */
  async pieces(sessionId: string): Promise<Map<string, PieceInfo>> {
    const out = new Map<string, PieceInfo>()
    for await (const json of this.readSubject(this.piecesSubject(sessionId))) {
      const record = json as PieceRecord
      out.set(record.key, record)
    }
    return out
  }

  /** Claims a job: the first claim is stored and returned to every caller. */
  async claimJob(sessionId: string, jobKey: string, proposal: ExportJob): Promise<ExportJob> {
    const subject = `${this.prefix}.muxer.jobs.${sessionId}.${shortHash(jobKey)}`
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await this.js.publish(subject, encoder.encode(JSON.stringify(proposal)), {
          expect: { lastSubjectSequence: 0 },
        })
        return proposal
      } catch (error) {
        if (!isWrongLastSequence(error)) throw error
      }
      try {
        const existing = await this.jsm.streams.getMessage(this.stream, { last_by_subj: subject })
        if (existing !== null) return existing.json<ExportJob>()
      } catch (error) {
        if (!isNotFound(error)) throw error
      }
    }
    throw new Error(`could not claim export job ${jobKey}`)
  }

  private async *readSubject(subject: string): AsyncGenerator<unknown> {
    let last: number
    try {
      last = (await this.jsm.streams.getMessage(this.stream, { last_by_subj: subject }))?.seq ?? 0
    } catch (error) {
      if (isNotFound(error)) return
      throw error
    }
    if (last === 0) return
    const consumer = await this.js.consumers.get(this.stream, {
      filter_subjects: subject,
      deliver_policy: DeliverPolicy.All,
    })
    const messages = await consumer.consume({ max_messages: 1024 })
    try {
      for await (const message of messages) {
        yield message.json()
        if (message.seq >= last) break
      }
    } finally {
      await messages.close()
      await consumer.delete().catch(() => undefined)
    }
  }
}
