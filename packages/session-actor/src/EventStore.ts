/**
 * The event store: one JetStream stream, one subject per session. Appends are optimistic
 * (`Nats-Expected-Last-Subject-Sequence`) and idempotent (`Nats-Msg-Id` = command id), so two
 * writers can never fork a history and a retried command is stored once.
 */
import {
  counter,
  endSpan,
  histogram,
  isWrongLastSequence,
  JetStreamPublisher,
  LATENCY_BOUNDARIES,
  retryTransient,
  type SpanParent,
  secondsSince,
  startSpan,
  traceparentOf,
} from "@capture/jetstream"
import { type CommandId, decodeUnknown, SessionEvent, type SessionId } from "@capture/protocol"
import {
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream"
import { Result } from "effect"
import type { Topology } from "./Topology.js"

/** An event with its position in the stream. */
export interface StoredEvent {
  readonly event: SessionEvent
  /** The stream sequence: what `Nats-Expected-Last-Subject-Sequence` compares against. */
  readonly streamSequence: number
}

/** A message on a session subject that this code cannot decode (newer writer, or corrupt). */
export class UnreadableEvent extends Error {
  constructor(
    readonly sessionId: string,
    readonly streamSequence: number,
    readonly reason: string,
  ) {
    super(
      `stream message ${streamSequence} of ${sessionId} is not an event this version understands: ${reason}`,
    )
  }
}

/** The subject moved past the expected sequence: someone else appended first. */
export class SequenceConflict extends Error {
  constructor(
    readonly sessionId: string,
    readonly expected: number,
  ) {
    super(`session ${sessionId} has events after stream sequence ${expected}`)
  }
}

/** What an append returns. */
export interface AppendAck {
  readonly streamSequence: number
  /** True when JetStream recognised the command id: the command had already been stored. */
  readonly duplicate: boolean
}

const appendSeconds = histogram(
  "capture_append_duration_seconds",
  "Time from an event's publish to JetStream's ack (conflicts and failures included)",
  LATENCY_BOUNDARIES,
)
const appendConflicts = counter(
  "capture_append_conflicts_total",
  "Appends refused because another writer appended to the session first (then decided again)",
)
// Shown as 0 until the first one, so a rate over it is defined from the start.
appendConflicts.add(0)
const eventsAppended = counter("capture_events_appended_total", "Events this process appended, by type")

const decodeEvent = decodeUnknown(SessionEvent)
const encoder = new TextEncoder()

export class EventStore {
  // Appends are the host's hot path: acks come over one shared subscription (see JetStreamPublisher).
  private readonly publisher: JetStreamPublisher

  private constructor(
    private readonly topology: Topology,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
  ) {
    this.publisher = new JetStreamPublisher(topology.nc)
  }

  static async make(topology: Topology): Promise<EventStore> {
    return new EventStore(topology, jetstream(topology.nc), await jetstreamManager(topology.nc))
  }

  /**
   * Appends one event, expecting the session's last stored event at `expectedStreamSequence`
   * (0: no event yet). Throws `SequenceConflict` when another writer got there first. The event's
   * message carries the append's trace context (child of `parent`) to every consumer.
   */
  async append(
    event: SessionEvent,
    expectedStreamSequence: number,
    commandId: CommandId,
    parent?: SpanParent,
  ): Promise<AppendAck> {
    const startedAt = performance.now()
    const span = startSpan("events.append", {
      parent,
      kind: "producer",
      attributes: { "capture.session_id": event.session_id, "capture.event_type": event.type },
    })
    try {
      const ack = await this.publisher.publish(
        this.topology.eventSubject(event.session_id),
        encoder.encode(JSON.stringify(event)),
        { msgId: commandId, lastSubjectSequence: expectedStreamSequence },
        span === undefined ? undefined : traceparentOf(span),
      )
      if (!ack.duplicate) eventsAppended.add(1, { type: event.type })
      endSpan(span)
      return { streamSequence: ack.seq, duplicate: ack.duplicate }
    } catch (error) {
      if (isWrongLastSequence(error)) {
        appendConflicts.add(1)
        endSpan(span)
        throw new SequenceConflict(event.session_id, expectedStreamSequence)
      }
      endSpan(span, error)
      throw error
    } finally {
      appendSeconds.observe(secondsSince(startedAt))
    }
  }

  /** Stops appending: appends still waiting for their ack fail. Reading goes on. */
  close(): void {
    this.publisher.close()
  }

  /** The stream sequence of a session's last event, or 0 when it has none. */
  async lastStreamSequence(sessionId: SessionId | string): Promise<number> {
    const last = await retryTransient(() =>
      this.jsm.streams.getMessage(this.topology.eventStream, {
        last_by_subj: this.topology.eventSubject(sessionId),
      }),
    )
    return last?.seq ?? 0
  }

  /**
   * A session's events after `afterStreamSequence`, up to its last event at the time of the call.
   * Throws `UnreadableEvent` at the first message it cannot decode.
   */
  async *read(sessionId: SessionId | string, afterStreamSequence = 0): AsyncGenerator<StoredEvent> {
    const last = await this.lastStreamSequence(sessionId)
    if (last <= afterStreamSequence) return
    yield* this.consume(this.topology.eventSubject(sessionId), afterStreamSequence, last)
  }

  /** Every event of every session, in stream order, up to the stream's end at the time of the call. */
  async *readAll(afterStreamSequence = 0): AsyncGenerator<StoredEvent> {
    const info = await retryTransient(() => this.jsm.streams.info(this.topology.eventStream))
    const last = info.state.last_seq
    if (last <= afterStreamSequence) return
    yield* this.consume(this.topology.eventSubjects, afterStreamSequence, last)
  }

  /** The ids of every session with at least one event. */
  async sessionIds(): Promise<ReadonlyArray<string>> {
    const prefix = this.topology.eventSubject("")
    const info = await this.jsm.streams.info(this.topology.eventStream, {
      subjects_filter: this.topology.eventSubjects,
    })
    return Object.keys(info.state.subjects ?? {})
      .map((subject) => subject.slice(prefix.length))
      .sort()
  }

  private async *consume(
    filter: string,
    afterStreamSequence: number,
    last: number,
  ): AsyncGenerator<StoredEvent> {
    // Creating the ephemeral consumer goes through the meta leader, which a cluster may be electing.
    const consumer = await retryTransient(() =>
      this.js.consumers.get(this.topology.eventStream, {
        // One subject as a string: nats-server 2.9 has filter_subject only (filter_subjects came in 2.10).
        filter_subjects: filter,
        ...(afterStreamSequence > 0
          ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: afterStreamSequence + 1 }
          : { deliver_policy: DeliverPolicy.All }),
      }),
    )
    const messages = await consumer.consume({ max_messages: 1024 })
    try {
      for await (const message of messages) {
        const sessionId = message.subject.slice(this.topology.eventSubject("").length)
        let decoded: Result.Result<SessionEvent, unknown>
        try {
          decoded = decodeEvent(message.json())
        } catch (error) {
          decoded = Result.fail(error)
        }
        if (Result.isFailure(decoded)) {
          const failure = decoded.failure
          throw new UnreadableEvent(
            sessionId,
            message.seq,
            failure instanceof Error ? failure.message : String(failure),
          )
        }
        yield { event: decoded.success, streamSequence: message.seq }
        if (message.seq >= last) break
      }
    } finally {
      await messages.close()
      await consumer.delete().catch(() => undefined)
    }
  }
}
