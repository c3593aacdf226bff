/**
 * The AI results stream: every rtstream's AI history (`AiEvent`s) on `CAPTURE_AI`, one subject
 * per rtstream (`capture.ai.<rtstream_id>`). Appends name the subject's last stream sequence they
 * expect and carry the event's stable id as `Nats-Msg-Id`: of two writers on one rtstream one
 * wins and the other reloads; a result stored before a crash is never stored again.
 *
 * ```ts
 * const store = await AiStore.open(nc)
 * const state = await store.load(rtstreamId)
 * await store.append(event, state.lastSequence)
 * ```
 */
import {
  ensureStream,
  inSpan,
  isMessageNotFound,
  JetStreamPublisher,
  type SpanParent,
  traceparentOf,
} from "@capture/jetstream"
import { AiEvent, decodeUnknown, type RecordingTranscriptionJob } from "@capture/protocol"
import {
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import { emptyRtstreamAi, foldAiEvent, type RtstreamAi } from "./RtstreamAi.js"

export interface AiStoreOptions {
  /** Prefix of the stream (`<PREFIX>_AI`) and its subjects (`<prefix>.ai.>`). */
  readonly prefix?: string
  /** 1 on a single server, 3 on a cluster. */
  readonly replicas?: number
}

/** Where AI results live in NATS. */
export interface AiTopology {
  readonly stream: string
  readonly subjects: string
  subject(rtstreamId: string): string
  /** The jobs AI workers share (`RecordingTranscriptionJob`), one subject per rtstream. */
  readonly jobsStream: string
  readonly jobsSubjects: string
  jobSubject(rtstreamId: string): string
}

/** A stored event and its stream sequence. */
export interface StoredAiEvent {
  readonly event: AiEvent
  readonly streamSequence: number
}

/** A message on the AI stream this version cannot read. */
export class UnreadableAiEvent extends Error {
  readonly _tag = "UnreadableAiEvent"
  constructor(
    readonly streamSequence: number,
    readonly reason: string,
  ) {
    super(`AI event at stream sequence ${streamSequence} is unreadable: ${reason}`)
  }
}

const decodeEvent = decodeUnknown(AiEvent)
const encoder = new TextEncoder()

export class AiStore {
  private constructor(
    readonly topology: AiTopology,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly publisher: JetStreamPublisher,
  ) {}

  /** Creates the stream if missing and opens it. Safe from many processes at once. */
  static async open(nc: NatsConnection, options: AiStoreOptions = {}): Promise<AiStore> {
    const prefix = options.prefix ?? "capture"
    const topology: AiTopology = {
      stream: `${prefix.toUpperCase()}_AI`,
      subjects: `${prefix}.ai.>`,
      subject: (rtstreamId) => `${prefix}.ai.${rtstreamId}`,
      // Not under `<prefix>.ai.>`: the AI stream's followers never see a job.
      jobsStream: `${prefix.toUpperCase()}_AI_JOBS`,
      jobsSubjects: `${prefix}.ai-jobs.>`,
      jobSubject: (rtstreamId) => `${prefix}.ai-jobs.${rtstreamId}`,
    }
    const jsm = await jetstreamManager(nc)
    await ensureStream(jsm, {
      name: topology.stream,
      subjects: [topology.subjects],
      replicas: options.replicas ?? 1,
    })
    await ensureStream(jsm, {
      name: topology.jobsStream,
      subjects: [topology.jobsSubjects],
      replicas: options.replicas ?? 1,
    })
    return new AiStore(topology, jetstream(nc), jsm, new JetStreamPublisher(nc))
  }

  /**
   * Stores `event` if the rtstream's last stored message is `expectedLastSequence` (0: none yet).
   * Rejects with JetStream's wrong-last-sequence error otherwise (`isWrongLastSequence`).
   * Returns the stream sequence (the first one's, when the id was stored before: a duplicate).
   */
  async append(event: AiEvent, expectedLastSequence: number, parent?: SpanParent): Promise<number> {
    // Tracing on: a span in the trace of what caused it, whose context the message carries to
    // the AI stream's consumers (alerts).
    return inSpan(
      "ai.append",
      {
        parent,
        kind: "producer",
        attributes: { "capture.session_id": event.session_id, "capture.ai_event_type": event.type },
      },
      async (span) => {
        const ack = await this.publisher.publish(
          this.topology.subject(event.rtstream_id),
          encoder.encode(JSON.stringify(event)),
          { msgId: event.id, lastSubjectSequence: expectedLastSequence },
          span === undefined ? undefined : traceparentOf(span),
        )
        return ack.seq
      },
    )
  }

  /**
   * Hands a job to the AI workers. Its id is the start it carries out, so asking again (a retry,
   * another gateway) within JetStream's duplicate window stores one job; a job past it finds its
   * work done. The worker's span continues `parent`'s trace (tracing on: the request that asked).
   */
  async requestJob(job: RecordingTranscriptionJob, parent?: SpanParent): Promise<void> {
    await this.publisher.publish(
      this.topology.jobSubject(job.rtstream_id),
      encoder.encode(JSON.stringify(job)),
      {
        msgId: `${job.rtstream_id}/recording/${job.start_sequence}`,
      },
      parent === undefined ? undefined : traceparentOf(parent),
    )
  }

  /** The stream sequence of the rtstream's last event; 0 when it has none. */
  async lastSequence(rtstreamId: string): Promise<number> {
    try {
      const last = await this.jsm.streams.getMessage(this.topology.stream, {
        last_by_subj: this.topology.subject(rtstreamId),
      })
      return last?.seq ?? 0
    } catch (error) {
      if (isMessageNotFound(error)) return 0
      throw error
    }
  }

  /** The rtstream's events in order, from stream sequence `after` + 1. */
  async *read(rtstreamId: string, after = 0): AsyncGenerator<StoredAiEvent> {
    const last = await this.lastSequence(rtstreamId)
    if (last <= after) return
    const consumer = await this.js.consumers.get(this.topology.stream, {
      filter_subjects: this.topology.subject(rtstreamId),
      ...(after === 0
        ? { deliver_policy: DeliverPolicy.All }
        : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 }),
    })
    const messages = await consumer.consume({ max_messages: 1024 })
    try {
      for await (const message of messages) {
        const decoded = (() => {
          try {
            return decodeEvent(message.json())
          } catch (error) {
            return Result.fail(error)
          }
        })()
        if (Result.isFailure(decoded)) throw new UnreadableAiEvent(message.seq, String(decoded.failure))
        yield { event: decoded.success, streamSequence: message.seq }
        if (message.seq >= last) break
      }
    } finally {
      await messages.close()
      await consumer.delete().catch(() => undefined)
    }
  }

  /** The rtstream's AI state: its history folded. */
  async load(rtstreamId: string): Promise<RtstreamAi> {
    return this.catchUp(emptyRtstreamAi(rtstreamId))
  }

  /** `state` brought up to date: only the events after its last sequence are read. */
  async catchUp(state: RtstreamAi): Promise<RtstreamAi> {
    let next = state
    for await (const stored of this.read(state.rtstreamId, state.lastSequence)) {
      next = foldAiEvent(next, stored.event, stored.streamSequence)
    }
    return next
  }

  close(): void {
    this.publisher.close()
  }
}

/** Decodes a message of the AI stream (for followers); a failure names the field. */
export const decodeAiEvent = (json: unknown) => decodeEvent(json)
