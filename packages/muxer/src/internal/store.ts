/**
 * Where the muxer keeps its work in NATS, shared by every instance:
 * - the exports bucket `<prefix>_exports` (`ExportBucket` of `@capture/media`, which lays it out):
 *   pieces (`pieces/<session>/…`), per-video inits and manifests (`videos/<video id>/…`);
 * - the stream `<PREFIX>_MUXER`: the piece index (`<prefix>.muxer.pieces.<session>`, one record per
 *   piece, so the final assembly reads a session's pieces in one pass instead of probing objects)
 *   and export jobs (`<prefix>.muxer.jobs.<session>.<job>`, first writer wins: the video id).
 * Records read back are decoded: a piece record that does not decode is logged and skipped (the
 * piece is made again), a job claim that does not decode is replaced by the next claimant.
 */
import { createHash } from "node:crypto"
import { ensureStream, isMessageNotFound, isStreamNotFound, isWrongLastSequence } from "@capture/jetstream"
import { ExportBucket, type ExportBucketOptions } from "@capture/media"
import { decodeJson } from "@capture/protocol"
import {
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream"
import type { ObjectStore } from "@nats-io/obj"
import type { NatsConnection } from "@nats-io/transport-node"
import { Result, Schema } from "effect"
import type { PieceInfo } from "./plan.js"

/** Options of `MuxerStore.open`: the exports bucket's, and where an unreadable record is reported. */
export interface MuxerStoreOptions extends ExportBucketOptions {
  readonly log?: (message: string) => void
}

const encoder = new TextEncoder()

const isNotFound = (error: unknown): boolean => isMessageNotFound(error) || isStreamNotFound(error)

/** A claimed export: the first muxer to claim a job fixes its video id for every retry. */
export const ExportJob = Schema.Struct({
  video_id: Schema.String,
  session_id: Schema.String,
  video_channel_id: Schema.NullOr(Schema.String),
  attempt: Schema.Int,
  created_at: Schema.String,
})
export type ExportJob = typeof ExportJob.Type

/** A piece record on the index stream. */
export type PieceRecord = PieceInfo & { readonly session_id: string }

/** Typed against `PieceRecord`: a field added to `PieceInfo` does not compile until it is read here. */
const PieceRecordSchema: Schema.Codec<PieceRecord, unknown> = Schema.Struct({
  session_id: Schema.String,
  key: Schema.String,
  name: Schema.String,
  kind: Schema.Literals(["raw", "mix", "fill"]),
  ok: Schema.Boolean,
  error: Schema.optionalKey(Schema.String),
  bytes: Schema.Finite,
  timescale: Schema.Finite,
  samples: Schema.Finite,
  duration: Schema.Finite,
  min_pts: Schema.Finite,
  moofs: Schema.Finite,
  init: Schema.optionalKey(Schema.String),
})

const decodeJob = decodeJson(ExportJob)
const decodePiece = decodeJson(PieceRecordSchema)

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
    log: (message: string) => void,
  ) {
    super(bucket, objects, log)
  }

  /** Opens (creating if missing) the exports bucket and the muxer's stream. */
  static override async open(nc: NatsConnection, options: MuxerStoreOptions = {}): Promise<MuxerStore> {
    const prefix = options.prefix ?? "capture"
    const replicas = options.replicas ?? 1
    const jsm = await jetstreamManager(nc)
    const stream = `${prefix.toUpperCase()}_MUXER`
    await ensureStream(jsm, { name: stream, subjects: [`${prefix}.muxer.>`], replicas, denyDelete: false })
    const { bucket, objects } = await ExportBucket.openObjects(nc, { prefix, replicas })
    return new MuxerStore(bucket, objects, stream, prefix, jetstream(nc), jsm, options.log ?? (() => {}))
  }

  private piecesSubject(sessionId: string): string {
    return `${this.prefix}.muxer.pieces.${sessionId}`
  }

  /**
   * Stores a piece's bytes (if any), then its record on the index. When another instance stored
   * the piece first, the record describes the bytes stored (a mix window encoded twice has the
   * same samples and timing, but its size may differ).
   */
  async putPiece(sessionId: string, info: PieceInfo, data: Uint8Array | undefined): Promise<PieceRecord> {
    // The index had no record of it (`Pieces.piece`): no lookup before the write.
    const bytes = data === undefined ? info.bytes : await this.putNew(info.name, data)
    const record: PieceRecord = { ...info, bytes, session_id: sessionId }
    await this.js.publish(this.piecesSubject(sessionId), encoder.encode(JSON.stringify(record)), {
      msgID: `${sessionId}/${info.key}`.slice(0, 250),
    })
    return record
  }

  /** Every piece recorded for a session, by key (the latest record wins). */
  async pieces(sessionId: string): Promise<Map<string, PieceInfo>> {
    return (await this.piecesAfter(sessionId, 0)).pieces
  }

  /**
   * The pieces recorded for a session after stream sequence `afterSequence`, and the sequence
   * read up to (to pass next time: each record is read once).
   */
  async piecesAfter(
    sessionId: string,
    afterSequence: number,
  ): Promise<{ pieces: Map<string, PieceInfo>; lastSequence: number }> {
    const out = new Map<string, PieceInfo>()
    let lastSequence = afterSequence
    for await (const message of this.readSubject(this.piecesSubject(sessionId), afterSequence)) {
      lastSequence = message.seq
      const record = decodePiece(message.data)
      if (Result.isSuccess(record)) out.set(record.success.key, record.success)
      else this.log(`muxer: piece record ${message.seq} does not decode (${record.failure.message}); skipped`)
    }
    return { pieces: out, lastSequence }
  }

  /**
   * Claims a job: the first claim is stored and returned to every caller. A stored claim that does
   * not decode is replaced (compare-and-set on its sequence, so one replacement wins).
   */
  async claimJob(sessionId: string, jobKey: string, proposal: ExportJob): Promise<ExportJob> {
    const subject = `${this.prefix}.muxer.jobs.${sessionId}.${shortHash(jobKey)}`
    let expected = 0
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await this.js.publish(subject, encoder.encode(JSON.stringify(proposal)), {
          expect: { lastSubjectSequence: expected },
        })
        return proposal
      } catch (error) {
        if (!isWrongLastSequence(error)) throw error
      }
      try {
        const existing = await this.jsm.streams.getMessage(this.stream, { last_by_subj: subject })
        if (existing !== null) {
          const job = decodeJob(existing.data)
          if (Result.isSuccess(job)) return job.success
          this.log(`muxer: job claim ${existing.seq} does not decode (${job.failure.message}); replaced`)
          expected = existing.seq
        }
      } catch (error) {
        if (!isNotFound(error)) throw error
      }
    }
    throw new Error(`could not claim export job ${jobKey}`)
  }

  private async *readSubject(
    subject: string,
    afterSequence = 0,
  ): AsyncGenerator<{ readonly seq: number; readonly data: Uint8Array }> {
    let last: number
    try {
      last = (await this.jsm.streams.getMessage(this.stream, { last_by_subj: subject }))?.seq ?? 0
    } catch (error) {
      if (isNotFound(error)) return
      throw error
    }
    if (last <= afterSequence) return
    const consumer = await this.js.consumers.get(this.stream, {
      filter_subjects: subject,
      ...(afterSequence === 0
        ? { deliver_policy: DeliverPolicy.All }
        : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: afterSequence + 1 }),
    })
    const messages = await consumer.consume({ max_messages: 1024 })
    try {
      for await (const message of messages) {
        yield { seq: message.seq, data: message.data }
        if (message.seq >= last) break
      }
    } finally {
      await messages.close()
      await consumer.delete().catch(() => undefined)
    }
  }
}
