/**
 * The webhook dispatcher: POSTs every lifecycle event of a session with a `callback_url`, signed
 * the Standard Webhooks way, at least once, in the session's order, retrying on a schedule.
 *
 * It is a JetStream durable consumer of the event stream (`<prefix>-webhooks`) shared by every
 * gateway process, so no process is special and a crashed one's messages are redelivered to the
 * others. Its parts, one file each:
 *
 * - lanes (`WebhookLanes`): per-session order across processes; only a lane's head is worked on;
 * - delivery records (`DeliveryRecords`): every attempt, so whoever gets a message next continues
 *   the retry schedule (a retry is a nak with the schedule's delay);
 * - the POST (`WebhookPost`): the URL checked again, the envelope signed and sent;
 * - the state fold (`StateFold`): the session state after each event, which its announcement needs.
 *
 * Order of writes per event: POST → delivery record → lane → ack. A crash between any two repeats
 * at most the POST (at-least-once); nothing is skipped. A message that is not an event, or whose
 * lane or delivery record does not decode, is logged and parked (terminated); the consumer goes on.
 */
import {
  consumeSpan,
  counter,
  endSpan,
  ensureDurableConsumer,
  type SpanParent,
  startSpan,
  traceparentOf,
} from "@capture/jetstream"
import { decodeUnknown, type LifecycleEvent, SessionEvent, type WebhookSecret } from "@capture/protocol"
import {
  EventStore,
  nextRouting,
  type SessionRuntime,
  SnapshotStore,
  type Topology,
} from "@capture/session-actor"
import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import { type CallbackUrlPolicy, defaultCallbackUrlPolicy } from "./CallbackUrlPolicy.js"
import { DeliveryRecords } from "./DeliveryRecords.js"
import { defaultJitter, defaultRetrySchedule, type RetrySchedule } from "./RetrySchedule.js"
import { StateFold } from "./StateFold.js"
import { openWebhookBucket } from "./WebhookBuckets.js"
import { type BlockedDelayBounds, blockedDelay, WebhookLanes } from "./WebhookLanes.js"
import { postWebhook } from "./WebhookPost.js"

/** Dispatcher settings. Only `secretsFor` is required. */
export interface WebhookDispatcherOptions {
  /** The account's active signing secrets; several during a rotation (one signature each). */
  readonly secretsFor: (accountId: string) => Promise<ReadonlyArray<WebhookSecret>>
  /** Delays between attempts (default 5 s, 5 min, 30 min, 2 h, 5 h, 10 h). */
  readonly schedule?: RetrySchedule | undefined
  /** Random spread of each delay, as a fraction (default 0.1: ±10 %). */
  readonly jitter?: number | undefined
  /** How long one POST may take, connect to response headers (default 15 s). */
  readonly requestTimeoutMs?: number | undefined
  /** The consumer's ack wait, used when this process creates it (default 30 s). */
  readonly ackWaitMs?: number | undefined
  /** The consumer's limit of unacknowledged messages, including those waiting for a retry (default 10 000). */
  readonly maxAckPending?: number | undefined
  /** Messages this process works on at once (default 32). */
  readonly concurrency?: number | undefined
  /** Bounds of the wait before a message blocked behind its predecessor is looked at again (default 200 ms–30 s). */
  readonly blockedDelayMs?: BlockedDelayBounds | undefined
  /** Which callback URLs may be called (default: public addresses only). */
  readonly policy?: CallbackUrlPolicy | undefined
  readonly log?: ((message: string) => void) | undefined
}

/** What becomes of a message: done, put back for later, or parked (logged and terminated). */
type Verdict =
  | { readonly _tag: "Ack" }
  | { readonly _tag: "Nak"; readonly delayMs: number }
  | { readonly _tag: "Park"; readonly reason: string }

const ack: Verdict = { _tag: "Ack" }
const nak = (delayMs: number): Verdict => ({ _tag: "Nak", delayMs: Math.max(0, Math.round(delayMs)) })
const park = (reason: string): Verdict => ({ _tag: "Park", reason })

const decodeEvent = decodeUnknown(SessionEvent)

const attempts = counter(
  "capture_webhook_attempts_total",
  "Webhook POSTs this process made, by outcome: delivered, retry (failed, another attempt scheduled) or failed (the last attempt failed)",
)

/** Internal failures (NATS unavailable, account store down) retry soon, outside the schedule. */
const INTERNAL_RETRY_MS = 2_000
/** A redelivery this much before its retry is due is still treated as due (timer granularity). */
const EARLY_TOLERANCE_MS = 25

/** Acks, naks or terms, ignoring a connection that is gone (the message is then redelivered). */
const settle = (message: JsMsg, verdict: Verdict): void => {
  try {
    if (verdict._tag === "Ack") message.ack()
    else if (verdict._tag === "Nak") message.nak(verdict.delayMs > 0 ? verdict.delayMs : undefined)
    else message.term()
  } catch {
    // Closed connection: the server redelivers after ack_wait.
  }
}

export class WebhookDispatcher {
  private messages: ConsumerMessages | undefined
  private running: Promise<void> | undefined
  private readonly stopping = new AbortController()
  /** Per session, the tail of this process's chain of messages: one at a time, in arrival order. */
  private readonly chains = new Map<string, Promise<void>>()
  private readonly fold: StateFold
  private held = 0
  private waiters: Array<() => void> = []
  private heartbeatMs = 10_000
  private readonly requestTimeoutMs: number
  private readonly concurrency: number
  private readonly blockedDelayMs: BlockedDelayBounds
  private readonly policy: CallbackUrlPolicy
  private readonly log: (message: string) => void
  /** Deliveries this instance completed (delivered or failed), for health and tests. */
  completed = 0

  private constructor(
    private readonly nc: NatsConnection,
    private readonly topology: Topology,
    events: EventStore,
    private readonly lanes: WebhookLanes,
    private readonly deliveries: DeliveryRecords,
    private readonly options: WebhookDispatcherOptions,
  ) {
    this.requestTimeoutMs = options.requestTimeoutMs ?? 15_000
    this.concurrency = Math.max(1, options.concurrency ?? 32)
    this.blockedDelayMs = options.blockedDelayMs ?? { min: 200, max: 30_000 }
    this.policy = options.policy ?? defaultCallbackUrlPolicy
    this.log = options.log ?? (() => {})
    this.fold = new StateFold(events, new SnapshotStore(topology), this.log)
  }

  /**
   * Creates the buckets and the durable consumer if missing (safe from many processes at once)
   * and starts dispatching on `nc`. History is read through the runtime's event store when one is
   * given.
   */
  static async start(
    nc: NatsConnection,
    source: SessionRuntime | Topology,
    options: WebhookDispatcherOptions,
  ): Promise<WebhookDispatcher> {
    const topology = "eventStream" in source ? source : source.topology
    const events = "eventStream" in source ? await EventStore.make(source) : source.events
    const [lanes, deliveries] = await Promise.all([
      openWebhookBucket(nc, topology.options, "lanes"),
      openWebhookBucket(nc, topology.options, "deliveries"),
    ])
    const spacing = {
      schedule: options.schedule ?? defaultRetrySchedule,
      jitter: options.jitter ?? defaultJitter,
    }
    const dispatcher = new WebhookDispatcher(
      nc,
      topology,
      events,
      new WebhookLanes(lanes),
      new DeliveryRecords(deliveries, spacing),
      options,
    )
    await dispatcher.begin()
    return dispatcher
  }

  /** The durable consumer's name. */
  get durableName(): string {
    return `${this.topology.options.prefix}-webhooks`
  }

  /**
   * Stops taking messages, aborts POSTs in flight (their messages are nak'ed for another process,
   * no attempt recorded) and waits for the messages in hand to be settled.
   */
  async stop(): Promise<void> {
    this.stopping.abort()
    this.wake()
    try {
      await this.messages?.close()
    } catch {
      // The connection is already closed.
    }
    await this.running
    await Promise.allSettled([...this.chains.values()])
  }

  private async begin(): Promise<void> {
    const jsm = await jetstreamManager(this.nc)
    // Another process may have created it first, maybe with other settings: the first one's are kept.
    // Created on a stream with history (webhooks added to a running deployment), it starts after
    // that history: those events happened without a dispatcher and are not announced now. Every
    // event a gateway causes comes after its dispatcher started, so none is missed.
    await ensureDurableConsumer(jsm, this.topology.eventStream, {
      durable_name: this.durableName,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.New,
      ack_wait: (this.options.ackWaitMs ?? 30_000) * 1_000_000,
      max_ack_pending: this.options.maxAckPending ?? 10_000,
      max_deliver: -1,
    })
    const info = await jsm.consumers.info(this.topology.eventStream, this.durableName)
    // Messages in hand tell the server they are still being worked on, well within ack_wait.
    this.heartbeatMs = Math.max(50, Math.floor((info.config.ack_wait ?? 30_000_000_000) / 1_000_000 / 3))
    const consumer = await jetstream(this.nc).consumers.get(this.topology.eventStream, this.durableName)
    const messages = await consumer.consume({ max_messages: this.concurrency })
    this.messages = messages
    this.running = this.run(messages).catch((error) => {
      if (!this.stopping.signal.aborted) this.log(`webhooks: consumer ended: ${String(error)}`)
    })
  }

  private async run(messages: ConsumerMessages): Promise<void> {
    const subjectPrefix = this.topology.eventSubject("").length
    for await (const message of messages) {
      if (this.stopping.signal.aborted) {
        settle(message, nak(0))
        continue
      }
      const sessionId = message.subject.slice(subjectPrefix)
      const heartbeat = setInterval(() => {
        try {
          message.working()
        } catch {
          // Closed connection: nothing to keep alive.
        }
      }, this.heartbeatMs)
      heartbeat.unref()
      this.held++
      const previous = this.chains.get(sessionId) ?? Promise.resolve()
      const current = previous.then(async () => {
        const span = consumeSpan(this.durableName, message)
        try {
          const verdict = await this.handle(message, span)
          if (verdict._tag === "Park") {
            this.log(
              `webhooks: stream message ${message.seq} on ${message.subject} parked: ${verdict.reason}`,
            )
          }
          settle(message, verdict)
        } finally {
          endSpan(span)
          clearInterval(heartbeat)
          this.held--
          this.wake()
        }
      })
      this.chains.set(sessionId, current)
      void current.then(() => {
        if (this.chains.get(sessionId) === current) this.chains.delete(sessionId)
      })
      while (this.held >= this.concurrency && !this.stopping.signal.aborted) {
        await new Promise<void>((resolve) => this.waiters.push(resolve))
      }
    }
  }

  private wake(): void {
    const waiters = this.waiters
    this.waiters = []
    for (const resolve of waiters) resolve()
  }

  /** Decides what to do with one message; never rejects. */
  private async handle(message: JsMsg, cause: SpanParent | undefined): Promise<Verdict> {
    let decoded: Result.Result<SessionEvent, unknown>
    try {
      decoded = decodeEvent(message.json())
    } catch (error) {
      decoded = Result.fail(error)
    }
    if (this.stopping.signal.aborted) return nak(0)
    if (Result.isFailure(decoded)) {
      // Written by a newer version, or corrupt: `replay --verify` reports it. Its session's lane
      // stops here, as the projector's view does.
      const failure = decoded.failure
      return park(`not a known event (${failure instanceof Error ? failure.message : String(failure)})`)
    }
    try {
      return await this.dispatch(decoded.success, message, cause)
    } catch (error) {
      if (this.stopping.signal.aborted) return nak(0)
      this.log(
        `webhooks: ${message.subject} #${message.seq} failed (${String(error)}); retrying in ${INTERNAL_RETRY_MS} ms`,
      )
      return nak(INTERNAL_RETRY_MS)
    }
  }

  private async dispatch(
    event: SessionEvent,
    message: JsMsg,
    cause: SpanParent | undefined,
  ): Promise<Verdict> {
    const sessionId = event.session_id
    const read = await this.lanes.read(sessionId)
    // The lane is left as it is for someone to look at; the session's webhooks stop here.
    if (read._tag === "Unreadable") return park(`its lane is unreadable (${read.reason})`)
    const { lane } = read
    if (event.sequence < lane.next_sequence) return ack // already dispatched: a redelivery
    if (event.sequence > lane.next_sequence) {
      const head = await this.deliveries.read(sessionId, lane.next_sequence)
      // The head is parked for good: waiting behind it would only go round and round.
      if (head._tag === "Unreadable") {
        return park(`waits behind event ${lane.next_sequence}, whose delivery record is unreadable`)
      }
      const record = head._tag === "Readable" ? head.record : undefined
      return nak(blockedDelay(read, record, message.info.deliveryCount, this.blockedDelayMs))
    }
    const routing = nextRouting(lane.routing, event)
    if (routing.callback_url !== null) {
      const lifecycle = await this.fold.lifecycleOf(event, message.seq)
      if (lifecycle !== undefined) {
        const verdict = await this.deliver(event, lifecycle, routing.account_id, routing.callback_url, cause)
        if (verdict !== undefined) return verdict
      }
    }
    await this.lanes.advance(sessionId, read.revision, event.sequence, routing)
    return ack
  }

  /**
   * Makes one attempt at the event's delivery, if one is due. Returns the verdict while attempts
   * remain, or undefined once the delivery is done (delivered or failed) and the lane may move on.
   */
  private async deliver(
    event: SessionEvent,
    lifecycle: LifecycleEvent,
    accountId: string,
    url: string,
    cause: SpanParent | undefined,
  ): Promise<Verdict | undefined> {
    const current = await this.deliveries.read(event.session_id, event.sequence)
    if (current._tag === "Unreadable") {
      // Whether and how often it was sent is unknown: the record is left as it is.
      return park(`its delivery record is unreadable (${current.reason})`)
    }
    if (current._tag === "Readable" && current.record.status !== "pending") return undefined
    const dueAt = current._tag === "Readable" ? current.record.next_attempt_at : null
    if (dueAt !== null) {
      // Redelivered before the retry is due (ack_wait ran out in a crashed process): keep the schedule.
      const early = Date.parse(dueAt) - Date.now()
      if (early > EARLY_TOLERANCE_MS) return nak(early)
    }
    const at = new Date()
    const span = startSpan("webhook.deliver", {
      parent: cause,
      kind: "client",
      attributes: { "capture.session_id": event.session_id, "capture.event_type": event.type },
    })
    const outcome = await postWebhook(lifecycle, url, {
      policy: this.policy,
      secrets: () => this.options.secretsFor(accountId),
      timeoutMs: this.requestTimeoutMs,
      signal: this.stopping.signal,
      ...(span === undefined ? {} : { traceparent: traceparentOf(span) }),
    })
    if (span !== undefined) {
      if (outcome.status_code !== null) span.attribute("http.response.status_code", outcome.status_code)
      if (outcome.error !== null) span.attribute("capture.webhook_error", outcome.error)
      endSpan(span)
    }
    if (outcome.error === "aborted" && this.stopping.signal.aborted) return nak(0)
    const record = await this.deliveries.recordAttempt({ event, lifecycle, url }, at, outcome, current)
    attempts.add(1, { outcome: record.status === "pending" ? "retry" : record.status })
    if (record.status === "pending" && record.next_attempt_at !== null) {
      this.log(
        `webhooks: ${event.session_id} #${event.sequence} attempt ${record.attempts.length} failed ` +
          `(${outcome.error}${outcome.status_code === null ? "" : ` ${outcome.status_code}`}); next at ${record.next_attempt_at}`,
      )
      return nak(Date.parse(record.next_attempt_at) - Date.now())
    }
    if (record.status === "failed") {
      this.log(
        `webhooks: ${event.session_id} #${event.sequence} failed after ${record.attempts.length} attempts; moving on`,
      )
    }
    this.completed++
    return undefined
  }
}
