/**
 * The webhook dispatcher: POSTs every lifecycle event of a session with a `callback_url`, signed
 * the Standard Webhooks way, at least once, in the session's order, retrying on a schedule.
 *
 * It is a JetStream durable consumer of the event stream (`<prefix>-webhooks`) shared by every
 * gateway process, so no process is special and a crashed one's messages are redelivered to the
 * others. Its parts, one file each:
 *
 * - lanes (`WebhookLanes`): per-session order across processes; only a lane's head is worked on;
 * - delivery records (`DeliveryRecords`): every attempt, so whoever works on an event next
 *   continues its retry schedule;
 * - the retry schedule (`ParkedRetries`): a failed attempt is acknowledged and its lane parked
 *   there until the next attempt is due; the session's later events are acknowledged too and
 *   delivered from the event stream by whichever gateway runs the retry, so waiting holds none
 *   of the consumer's `max_ack_pending` slots;
 * - the POST (`WebhookPost`): the URL checked again, the envelope signed and sent;
 * - the state fold (`StateFold`): the session state after each event, which its announcement needs.
 *
 * Order of writes per event: POST → delivery record → (retry record →) lane → ack. A crash
 * between any two repeats at most the POST (at-least-once); nothing is skipped. A message that is
 * not an event, or whose lane or delivery record does not decode, is logged and parked
 * (terminated); the consumer goes on.
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
  type StoredEvent,
  type Topology,
  UnreadableEvent,
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
import { ParkedRetries } from "./ParkedRetries.js"
import { defaultJitter, defaultRetrySchedule, type RetrySchedule } from "./RetrySchedule.js"
import { StateFold } from "./StateFold.js"
import { defaultWebhookRetentionMs, openWebhookBucket, webhookBucketNames } from "./WebhookBuckets.js"
import {
  type BlockedDelayBounds,
  blockedDelay,
  type Lane,
  passed,
  type ReadableLane,
  WebhookLanes,
} from "./WebhookLanes.js"
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
  /** The consumer's limit of unacknowledged messages, used when this process creates it (default 10 000). */
  readonly maxAckPending?: number | undefined
  /** How long lanes, delivery records and retry records are kept after their last write (default 7 days). */
  readonly retentionMs?: number | undefined
  /** How long a gateway's claim on a parked lane holds before another takes it over (default twice the request timeout plus 10 s). */
  readonly retryLeaseMs?: number | undefined
  /** Messages this process works on at once (default 32). */
  readonly concurrency?: number | undefined
  /** Bounds of the wait before a message blocked behind its predecessor is looked at again (default 200 ms–30 s). */
  readonly blockedDelayMs?: BlockedDelayBounds | undefined
  /** Which callback URLs may be called (default: public addresses only). */
  readonly policy?: CallbackUrlPolicy | undefined
  readonly log?: ((message: string) => void) | undefined
}

/** What became of one attempt at a lane's head. */
type HeadOutcome =
  /** Done (delivered, failed for good, or nothing to send): the lane as moved past it, to write. */
  | { readonly _tag: "Passed"; readonly lane: Lane }
  /** Waits for its next attempt, due at `dueAt` (ms since epoch). */
  | { readonly _tag: "Retry"; readonly dueAt: number }
  /** Its delivery record cannot be read: whether and how often it was sent is unknown. */
  | { readonly _tag: "Unreadable"; readonly reason: string }
  /** This process is stopping: the POST was abandoned, nothing recorded. */
  | { readonly _tag: "Aborted" }

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

const webhookDurableName = (topology: Topology) => `${topology.options.prefix}-webhooks`

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
  private readonly retentionMs: number
  /** Deliveries this instance completed (delivered or failed), for health and tests. */
  completed = 0

  private constructor(
    private readonly nc: NatsConnection,
    private readonly topology: Topology,
    private readonly events: EventStore,
    private readonly lanes: WebhookLanes,
    private readonly deliveries: DeliveryRecords,
    private readonly retries: ParkedRetries,
    private readonly options: WebhookDispatcherOptions,
  ) {
    this.requestTimeoutMs = options.requestTimeoutMs ?? 15_000
    this.concurrency = Math.max(1, options.concurrency ?? 32)
    this.blockedDelayMs = options.blockedDelayMs ?? { min: 200, max: 30_000 }
    this.policy = options.policy ?? defaultCallbackUrlPolicy
    this.log = options.log ?? (() => {})
    this.fold = new StateFold(events, new SnapshotStore(topology), this.log)
    this.retentionMs = options.retentionMs ?? defaultWebhookRetentionMs
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
    const retention = options.retentionMs ?? defaultWebhookRetentionMs
    const [lanes, deliveries, retries] = await Promise.all([
      openWebhookBucket(nc, topology.options, "lanes", retention),
      openWebhookBucket(nc, topology.options, "deliveries", retention),
      openWebhookBucket(nc, topology.options, "retries", retention),
    ])
    const spacing = {
      schedule: options.schedule ?? defaultRetrySchedule,
      jitter: options.jitter ?? defaultJitter,
    }
    const requestTimeoutMs = options.requestTimeoutMs ?? 15_000
    const dispatcher = new WebhookDispatcher(
      nc,
      topology,
      events,
      new WebhookLanes(lanes),
      new DeliveryRecords(deliveries, spacing),
      new ParkedRetries(retries, {
        bucketName: webhookBucketNames(topology.options.prefix).retries,
        // Long enough for a POST that times out, renewed at every event the runner passes.
        leaseMs: options.retryLeaseMs ?? 2 * requestTimeoutMs + 10_000,
        concurrency: Math.max(1, options.concurrency ?? 32),
        log: options.log ?? (() => {}),
      }),
      options,
    )
    await dispatcher.begin()
    return dispatcher
  }

  /** The durable consumer's name. */
  get durableName(): string {
    return webhookDurableName(this.topology)
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
    await this.retries.stop()
  }

  /** Lanes parked in the retry schedule, as this process sees it (for health and tests). */
  get parkedLanes(): number {
    return this.retries.size
  }

  /**
   * Creates the durable consumer if missing. Another process may have created it first, maybe
   * with other settings: the first one's are kept. Created on a stream with history (webhooks
   * added to a running deployment), it starts after that history: those events happened without
   * a dispatcher and are not announced now. Every event a gateway causes comes after the consumer
   * exists (its own dispatcher's start, or this call at the start of a gateway that leaves
   * delivery to `--role workers`), so none is missed.
   */
  static async ensureConsumer(
    nc: NatsConnection,
    topology: Topology,
    options: Pick<WebhookDispatcherOptions, "ackWaitMs" | "maxAckPending"> = {},
  ): Promise<void> {
    await ensureDurableConsumer(await jetstreamManager(nc), topology.eventStream, {
      durable_name: webhookDurableName(topology),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.New,
      ack_wait: (options.ackWaitMs ?? 30_000) * 1_000_000,
      max_ack_pending: options.maxAckPending ?? 10_000,
      max_deliver: -1,
    })
  }

  private async begin(): Promise<void> {
    const jsm = await jetstreamManager(this.nc)
    await WebhookDispatcher.ensureConsumer(this.nc, this.topology, this.options)
    const info = await jsm.consumers.info(this.topology.eventStream, this.durableName)
    // Messages in hand tell the server they are still being worked on, well within ack_wait.
    this.heartbeatMs = Math.max(50, Math.floor((info.config.ack_wait ?? 30_000_000_000) / 1_000_000 / 3))
    const consumer = await jetstream(this.nc).consumers.get(this.topology.eventStream, this.durableName)
    const messages = await consumer.consume({ max_messages: this.concurrency })
    this.messages = messages
    this.running = this.run(messages).catch((error) => {
      if (!this.stopping.signal.aborted) this.log(`webhooks: consumer ended: ${String(error)}`)
    })
    await this.retries.start((sessionId, revision) => this.runParked(sessionId, revision))
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
    // The lane as this process left it, when it knows (a write that finds it moved makes the next look read).
    let expected = this.lanes.expected(sessionId, event.sequence)
    for (;;) {
      const read = expected ?? (await this.lanes.read(sessionId))
      expected = undefined
      // The lane is left as it is for someone to look at; the session's webhooks stop here.
      if (read._tag === "Unreadable") return park(`its lane is unreadable (${read.reason})`)
      let lane = read.lane
      if (event.sequence < lane.next_sequence) return ack // already dispatched: a redelivery
      if (lane.parked === true) {
        // Its head waits in the retry schedule: whoever runs it delivers this one from the stream
        // after it. Noting it on the lane makes a runner about to unpark the lane look again.
        if ((lane.waiting_through ?? 0) >= event.sequence) return ack
        if (await this.lanes.write(sessionId, read.revision, { ...lane, waiting_through: event.sequence })) {
          return ack
        }
        continue
      }
      if (event.sequence > lane.next_sequence) {
        const restarted = await this.expiredLane(read, event, message.seq)
        if (restarted === undefined) {
          const head = await this.deliveries.read(sessionId, lane.next_sequence)
          // The head is parked for good: waiting behind it would only go round and round.
          if (head._tag === "Unreadable") {
            return park(`waits behind event ${lane.next_sequence}, whose delivery record is unreadable`)
          }
          // Its head is in flight on another process (or its message not yet handed out): briefly.
          const record = head._tag === "Readable" ? head.record : undefined
          return nak(blockedDelay(read, record, message.info.deliveryCount, this.blockedDelayMs))
        }
        lane = restarted
      }
      const outcome = await this.attemptHead(event, message.seq, lane, cause)
      switch (outcome._tag) {
        case "Aborted":
          return nak(0)
        case "Unreadable":
          return park(`its delivery record is unreadable (${outcome.reason})`)
        case "Passed":
          if (await this.lanes.write(sessionId, read.revision, outcome.lane)) return ack
          continue // Moved meanwhile: look again (a delivered record is not sent twice).
        case "Retry":
          // Retry record first: a parked lane always has one, so its later events are never stranded.
          await this.retries.park(sessionId, outcome.dueAt)
          if (
            await this.lanes.write(sessionId, read.revision, {
              ...lane,
              after_stream_sequence: message.seq - 1,
              parked: true,
            })
          ) {
            return ack
          }
          continue
      }
    }
  }

  /**
   * When a session has no lane (never written, or expired after the retention period) and its
   * event `sequence` > 1 comes: the lane restarted at this event when it expired, with the routing
   * its history gives; undefined when its predecessor is recent (the session's first event is
   * still being dispatched), so the event waits.
   */
  private async expiredLane(
    read: ReadableLane,
    event: SessionEvent,
    streamSequence: number,
  ): Promise<Lane | undefined> {
    if (read.present) return undefined
    let routing = read.lane.routing
    let predecessor: SessionEvent | undefined
    for await (const stored of this.events.read(event.session_id)) {
      if (stored.event.sequence >= event.sequence) break
      routing = nextRouting(routing, stored.event)
      predecessor = stored.event
    }
    // No earlier event left (purged), or the last one older than what lanes are kept for.
    const expired = predecessor === undefined || Date.now() - Date.parse(predecessor.time) > this.retentionMs
    if (!expired) return undefined
    this.log(`webhooks: the lane of ${event.session_id} had expired; restarted at event ${event.sequence}`)
    return {
      next_sequence: event.sequence,
      routing,
      moved_at: Date.now(),
      after_stream_sequence: streamSequence - 1,
    }
  }

  /**
   * Runs a parked lane whose retry came due (this process holds its retry record at `revision`):
   * its head's next attempt, then the session's later events from the stream, in order, until
   * one must wait again (rescheduled) or none is left (the lane flows again, the record goes).
   */
  private async runParked(sessionId: string, revision: number): Promise<void> {
    let held = revision
    // Stopping: hand the lane back at once rather than when the claim runs out.
    const handBack = () =>
      this.retries.reschedule(sessionId, held, Date.now()).then(
        () => undefined,
        () => undefined,
      )
    for (;;) {
      if (this.stopping.signal.aborted) return handBack()
      const read = await this.lanes.read(sessionId)
      if (read._tag === "Unreadable") {
        this.log(`webhooks: the parked lane of ${sessionId} is unreadable (${read.reason}); left as it is`)
        return this.retries.release(sessionId, held)
      }
      const { lane } = read
      if (lane.parked !== true) return this.retries.release(sessionId, held)
      let head: StoredEvent | undefined
      try {
        head = await this.headOf(sessionId, lane)
      } catch (error) {
        if (!(error instanceof UnreadableEvent)) throw error
        this.log(`webhooks: the lane of ${sessionId} stops at an unreadable event (${error.message})`)
        return this.retries.release(sessionId, held)
      }
      if (head === undefined) {
        // Caught up, or the session's subject was purged: the consumer takes its events again.
        const { parked: _parked, waiting_through: _waiting, ...flowing } = lane
        if (await this.lanes.write(sessionId, read.revision, flowing))
          return this.retries.release(sessionId, held)
        continue // A later event was noted meanwhile.
      }
      if (head.event.sequence > lane.next_sequence) {
        this.log(
          `webhooks: ${sessionId} events ${lane.next_sequence}–${head.event.sequence - 1} are no longer in the stream; skipped`,
        )
      }
      const outcome = await this.attemptHead(head.event, head.streamSequence, lane)
      switch (outcome._tag) {
        case "Aborted":
          return handBack()
        case "Unreadable":
          this.log(
            `webhooks: ${sessionId} #${head.event.sequence}: its delivery record is unreadable (${outcome.reason}); ` +
              "the session's webhooks stop here",
          )
          return this.retries.release(sessionId, held)
        case "Retry":
          await this.retries.reschedule(sessionId, held, outcome.dueAt)
          return
        case "Passed": {
          await this.lanes.write(sessionId, read.revision, { ...outcome.lane, parked: true })
          const renewed = await this.retries.claim(sessionId, held)
          if (renewed === undefined) return // Another gateway took the lane over.
          held = renewed
        }
      }
    }
  }

  /** The lane's head as stored: the session's first event at or after `next_sequence`, if any. */
  private async headOf(sessionId: string, lane: Lane): Promise<StoredEvent | undefined> {
    for await (const stored of this.events.read(sessionId, lane.after_stream_sequence ?? 0)) {
      if (stored.event.sequence >= lane.next_sequence) return stored
    }
    return undefined
  }

  /** One attempt at the lane's head `event` (stored at `streamSequence`), if one is due. */
  private async attemptHead(
    event: SessionEvent,
    streamSequence: number,
    lane: Lane,
    cause?: SpanParent | undefined,
  ): Promise<HeadOutcome> {
    const routing = nextRouting(lane.routing, event)
    if (routing.callback_url !== null) {
      const lifecycle = await this.fold.lifecycleOf(event, streamSequence)
      if (lifecycle !== undefined) {
        const outcome = await this.deliver(event, lifecycle, routing.account_id, routing.callback_url, cause)
        if (outcome !== undefined) return outcome
      }
    }
    return { _tag: "Passed", lane: passed(lane, event.sequence, streamSequence, routing) }
  }

  /**
   * Makes one attempt at the event's delivery, if one is due. Returns undefined once the delivery
   * is done (delivered or failed) and the lane may move on.
   */
  private async deliver(
    event: SessionEvent,
    lifecycle: LifecycleEvent,
    accountId: string,
    url: string,
    cause?: SpanParent | undefined,
  ): Promise<Exclude<HeadOutcome, { _tag: "Passed" }> | undefined> {
    const current = await this.deliveries.read(event.session_id, event.sequence)
    // Whether and how often it was sent is unknown: the record is left as it is.
    if (current._tag === "Unreadable") return { _tag: "Unreadable", reason: current.reason }
    if (current._tag === "Readable" && current.record.status !== "pending") return undefined
    const dueAt = current._tag === "Readable" ? current.record.next_attempt_at : null
    if (dueAt !== null) {
      // Looked at before the retry is due (a redelivery, or a runner woken early): keep the schedule.
      const early = Date.parse(dueAt) - Date.now()
      if (early > EARLY_TOLERANCE_MS) return { _tag: "Retry", dueAt: Date.parse(dueAt) }
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
    if (outcome.error === "aborted" && this.stopping.signal.aborted) return { _tag: "Aborted" }
    const record = await this.deliveries.recordAttempt({ event, lifecycle, url }, at, outcome, current)
    attempts.add(1, { outcome: record.status === "pending" ? "retry" : record.status })
    if (record.status === "pending" && record.next_attempt_at !== null) {
      this.log(
        `webhooks: ${event.session_id} #${event.sequence} attempt ${record.attempts.length} failed ` +
          `(${outcome.error}${outcome.status_code === null ? "" : ` ${outcome.status_code}`}); next at ${record.next_attempt_at}`,
      )
      return { _tag: "Retry", dueAt: Date.parse(record.next_attempt_at) }
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
