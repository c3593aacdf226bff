/**
 * The projector: a JetStream durable consumer of the event stream that keeps the read model and
 * the timer bucket in step with each session's history. Work is shared by every process running
 * one (same durable name). It writes each session's state, at least as new as the events it
 * acknowledges, with compare-and-set on the view's sequence, so the order in which instances see
 * events does not matter, a view never moves backwards, and a redelivery is a no-op.
 */
import { endSpan, ensureDurableConsumer, observeLag, parentOf, startSpan } from "@capture/jetstream"
import { decodeUnknown, SessionEvent } from "@capture/protocol"
import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream"
import { Result } from "effect"
import type { ActorHost } from "./ActorHost.js"
import type { TimerStore } from "./DurableTimers.js"
import { UnreadableEvent } from "./EventStore.js"
import { UnappliableEvent } from "./SessionMachine.js"
import type { SessionReadModel } from "./SessionReadModel.js"
import type { Topology } from "./Topology.js"

const decodeEvent = decodeUnknown(SessionEvent)

/**
 * Keeps the read model and timers in step with one session's stored history: its latest state,
 * or with `covering`, a state that folds at least the events up to that stream sequence (the
 * host's own when it already does: no lookup of the session's last event).
 */
export const projectSession = async (
  host: ActorHost,
  readModel: SessionReadModel,
  timers: TimerStore,
  sessionId: string,
  covering?: number,
): Promise<void> => {
  const loaded =
    covering === undefined ? await host.load(sessionId) : await host.loadCovering(sessionId, covering)
  // Timers first: a view that shows a state has that state's timers armed.
  await timers.reconcile(loaded.state)
  await readModel.upsert(loaded.state, loaded.streamSequence)
}

/** Sessions projected at once by one projector; a session's own events are never projected in parallel. */
const PARALLEL_SESSIONS = 32

/** A session's projection under way, and the messages that arrived for it meanwhile. */
interface SessionWork {
  readonly done: Promise<void>
  /** Covered by one more projection after this one (its state covers them). */
  readonly next: Array<JsMsg>
}

export class Projector {
  private messages: ConsumerMessages | undefined
  private running: Promise<void> | undefined
  private readonly working = new Map<string, SessionWork>()
  /** Messages this instance has projected (for health and tests). */
  processed = 0
  /** Projections run: fewer than messages when a session's events arrive together. */
  projections = 0

  constructor(
    private readonly topology: Topology,
    private readonly host: ActorHost,
    private readonly readModel: SessionReadModel,
    private readonly timers: TimerStore,
    private readonly log: (message: string) => void = () => {},
  ) {}

  get durableName(): string {
    return `${this.topology.options.prefix}-projector`
  }

  async start(): Promise<void> {
    const jsm = await jetstreamManager(this.topology.nc)
    await ensureDurableConsumer(jsm, this.topology.eventStream, {
      durable_name: this.durableName,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: 30_000_000_000,
      max_ack_pending: 1_000,
      max_deliver: -1,
    })
    const consumer = await jetstream(this.topology.nc).consumers.get(
      this.topology.eventStream,
      this.durableName,
    )
    this.messages = await consumer.consume({ max_messages: 256 })
    const messages = this.messages
    this.running = (async () => {
      for await (const message of messages) {
        const decoded = (() => {
          try {
            return decodeEvent(message.json())
          } catch (error) {
            return Result.fail(error)
          }
        })()
        if (Result.isFailure(decoded)) {
          // Unreadable here (written by a newer version?): leave it for `replay --verify` to report.
          this.log(
            `projector: stream message ${message.seq} on ${message.subject} is not a known event; skipped`,
          )
          // The cached state skipped this message: drop it, so loads see the history as stored.
          this.host.forget(message.subject.slice(this.topology.eventSubject("").length), message.seq)
          message.term()
          continue
        }
        // In stream order, before any load: the cached state follows the stream.
        this.host.observe(decoded.success, message.seq)
        observeLag(this.durableName, message)
        const sessionId = decoded.success.session_id
        const under = this.working.get(sessionId)
        if (under !== undefined) {
          under.next.push(message)
          continue
        }
        while (this.working.size >= PARALLEL_SESSIONS) {
          await Promise.race([...this.working.values()].map((w) => w.done))
        }
        this.project(sessionId, [message])
      }
      // A projection that ends may start its follow-up: wait until none is left.
      while (this.working.size > 0) await Promise.all([...this.working.values()].map((w) => w.done))
    })()
  }

  /**
   * Projects a session's state once for `batch`, then once more for what arrived meanwhile.
   * Each message is acked only after a projection that loaded it.
   */
  private project(sessionId: string, batch: ReadonlyArray<JsMsg>): void {
    const next: Array<JsMsg> = []
    const done = (async () => {
      // In the trace of the latest event projected, linked to the others'.
      const span = this.spanOf(sessionId, batch)
      try {
        this.projections++
        // Every message of the batch was folded into the host's cache as it arrived (`observe`),
        // or the load catches up: either way the state covers the batch.
        const covering = Math.max(...batch.map((message) => message.seq))
        await projectSession(this.host, this.readModel, this.timers, sessionId, covering)
        for (const message of batch) message.ack()
        this.processed += batch.length
        endSpan(span)
      } catch (error) {
        endSpan(span, error)
        if (error instanceof UnreadableEvent || error instanceof UnappliableEvent) {
          // The session's history does not fold: retrying cannot help. `replay --verify` reports it.
          this.log(`projector: session ${sessionId} cannot be projected: ${error.message}`)
          for (const message of batch) message.term()
        } else {
          this.log(`projector: session ${sessionId} failed (${String(error)}); will retry`)
          for (const message of batch) message.nak(1_000)
        }
      }
    })().finally(() => {
      this.working.delete(sessionId)
      if (next.length > 0) this.project(sessionId, next)
    })
    this.working.set(sessionId, { done, next })
  }

  private spanOf(sessionId: string, batch: ReadonlyArray<JsMsg>) {
    const last = batch[batch.length - 1]
    const span = startSpan(this.durableName, {
      parent: last === undefined ? undefined : parentOf(last),
      kind: "consumer",
      attributes: { "capture.session_id": sessionId, "capture.events": batch.length },
    })
    if (span !== undefined && batch.length > 1) {
      const links = batch.slice(0, -1).flatMap((message) => {
        const cause = parentOf(message)
        return cause === undefined ? [] : [{ span: cause, attributes: {} }]
      })
      if (links.length > 0) span.addLinks(links)
    }
    return span
  }

  async stop(): Promise<void> {
    await this.messages?.close()
    await this.running
  }
}

/** Drops and rebuilds the read model and timers from the event stream. */
export const rebuildProjections = async (
  host: ActorHost,
  readModel: SessionReadModel,
  timers: TimerStore,
  sessionIds: ReadonlyArray<string>,
): Promise<number> => {
  await readModel.clear()
  host.clear()
  for (const sessionId of sessionIds) await projectSession(host, readModel, timers, sessionId)
  return sessionIds.length
}
