/**
 * The webhook dispatcher: POSTs every lifecycle event of a session with a `callback_url`, signed
 * the Standard Webhooks way, at least once, in the session's order, retrying on a schedule.
 *
 * It is a JetStream durable consumer of the event stream (`<prefix>-webhooks`) shared by every
 * gateway process, so no process is special and a crashed one's messages are redelivered to the
 * others. Two KV buckets hold what must survive a crash:
 *
 * - lanes (`<prefix>_webhook_lanes`, key `<session_id>`): the session's next event sequence to
 *   dispatch and its routing (account, callback URL) as of the events before it. Only the event
 *   whose sequence equals `next_sequence` is worked on; a later one is nak'ed until its
 *   predecessors are done; an earlier one is a redelivery and is acked. The lane moves on with
 *   compare-and-set, so two processes never both advance it.
 * - deliveries (`<prefix>_webhook_deliveries`, key `<session_id>.<sequence>`): the
 *   `WebhookDelivery` record with every attempt. A retry is a nak with the schedule's delay;
 *   whoever gets the message next reads the attempt count here and continues the schedule.
 *
 * Order of writes per event: POST → delivery record → lane → ack. A crash between any two repeats
 * at most the POST (at-least-once); nothing is skipped.
 */
import http from "node:http"
import https from "node:https"
import type { LookupFunction } from "node:net"
import { ensureDurableConsumer, isRevisionConflict } from "@capture/jetstream"
import {
  decodeUnknown,
  type LifecycleEvent,
  SessionEvent,
  signWebhook,
  toWebhookEnvelope,
  WEBHOOK_ID_HEADER,
  WEBHOOK_SIGNATURE_HEADER,
  WEBHOOK_TIMESTAMP_HEADER,
  type WebhookAttempt,
  WebhookDelivery,
  type WebhookSecret,
} from "@capture/protocol"
import {
  type EventRouting,
  EventStore,
  emptyRouting,
  foldEvent,
  initialState,
  nextRouting,
  type SessionRuntime,
  type SessionState,
  SnapshotStore,
  type Topology,
  toLifecycleEvent,
  UnappliableEvent,
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
import type { KV } from "@nats-io/kv"
import type { NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import {
  type CallbackUrlPolicy,
  type CheckedCallbackUrl,
  defaultCallbackUrlPolicy,
  type ResolvedAddress,
  resolveCallbackUrl,
} from "./CallbackUrlPolicy.js"
import { deliveryKey, openWebhookBucket } from "./DeliveryLog.js"
import {
  defaultJitter,
  defaultRetrySchedule,
  type RetrySchedule,
  retryDelay,
  withJitter,
} from "./RetrySchedule.js"

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
  readonly blockedDelayMs?: { readonly min: number; readonly max: number } | undefined
  /** Which callback URLs may be called (default: public addresses only). */
  readonly policy?: CallbackUrlPolicy | undefined
  readonly log?: ((message: string) => void) | undefined
}

/** A session's progress: the next event to dispatch and the routing in force before it. */
interface Lane {
  readonly next_sequence: number
  readonly routing: EventRouting
  /** When the lane last moved (ms since epoch): how long its head has been waiting. */
  readonly moved_at: number
}

/** What becomes of a message. */
type Verdict =
  | { readonly _tag: "Ack" }
  | { readonly _tag: "Nak"; readonly delayMs: number }
  | { readonly _tag: "Term"; readonly reason: string }

const ack: Verdict = { _tag: "Ack" }
const nak = (delayMs: number): Verdict => ({ _tag: "Nak", delayMs: Math.max(0, Math.round(delayMs)) })

/** A delivery attempt's result, before it is numbered and timed. */
type AttemptOutcome = Pick<WebhookAttempt, "status_code" | "latency_ms" | "error">

/** A folded state and the stream sequence of the event it ends with. */
interface Folded {
  readonly state: SessionState
  readonly streamSequence: number
}

const decodeEvent = decodeUnknown(SessionEvent)
const decodeDelivery = decodeUnknown(WebhookDelivery)

/** Internal failures (NATS unavailable, account store down) retry soon, outside the schedule. */
const INTERNAL_RETRY_MS = 2_000
/** A redelivery this much before its retry is due is still treated as due (timer granularity). */
const EARLY_TOLERANCE_MS = 25
const STATE_CACHE_SIZE = 10_000
const USER_AGENT = "Capture-Webhooks/2"

/** Connects to the address the policy checked instead of resolving the host again. */
const pinnedLookup =
  (target: ResolvedAddress): LookupFunction =>
  (_hostname, options, callback) => {
    if (options.all === true) callback(null, [{ address: target.address, family: target.family }])
    else callback(null, target.address, target.family)
  }

/** One POST; never rejects. Redirects are not followed: a 3xx is a failed attempt. */
const post = (
  target: CheckedCallbackUrl,
  body: string,
  headers: Record<string, string>,
  timeoutMs: number,
  stop: AbortSignal,
): Promise<AttemptOutcome> =>
  new Promise((resolve) => {
    const started = performance.now()
    const done = (status_code: number | null, error: string | null) =>
      resolve({ status_code, latency_ms: Math.round(performance.now() - started), error })
    const address = target.addresses[0]
    if (address === undefined) return done(null, "unresolvable")
    const timeout = AbortSignal.timeout(timeoutMs)
    const signal = AbortSignal.any([timeout, stop])
    const client = target.url.protocol === "https:" ? https : http
    const request = client.request(
      target.url,
      {
        method: "POST",
        headers: {
          ...headers,
          "content-type": "application/json",
          "content-length": String(Buffer.byteLength(body)),
          "user-agent": USER_AGENT,
        },
        agent: false,
        lookup: pinnedLookup(address),
        signal,
      },
      (response) => {
        // The body is not read; the timeout signal still ends a response that never finishes.
        response.on("error", () => {})
        response.resume()
        const code = response.statusCode ?? 0
        done(code, code >= 200 && code < 300 ? null : "unexpected_status")
      },
    )
    request.on("error", (error: NodeJS.ErrnoException) => {
      if (stop.aborted) done(null, "aborted")
      else if (timeout.aborted) done(null, "timeout")
      else done(null, `connection_error: ${error.code ?? error.message}`)
    })
    request.end(body)
  })

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
  private readonly states = new Map<string, Folded>()
  private readonly snapshots: SnapshotStore
  private held = 0
  private waiters: Array<() => void> = []
  private heartbeatMs = 10_000
  private readonly schedule: RetrySchedule
  private readonly jitter: number
  private readonly requestTimeoutMs: number
  private readonly concurrency: number
  private readonly blockedDelayMs: { readonly min: number; readonly max: number }
  private readonly policy: CallbackUrlPolicy
  private readonly log: (message: string) => void
  /** Deliveries this instance completed (delivered or failed), for health and tests. */
  completed = 0

  private constructor(
    private readonly nc: NatsConnection,
    private readonly topology: Topology,
    private readonly events: EventStore,
    private readonly lanes: KV,
    private readonly deliveries: KV,
    private readonly options: WebhookDispatcherOptions,
  ) {
    this.snapshots = new SnapshotStore(topology)
    this.schedule = options.schedule ?? defaultRetrySchedule
    this.jitter = options.jitter ?? defaultJitter
    this.requestTimeoutMs = options.requestTimeoutMs ?? 15_000
    this.concurrency = Math.max(1, options.concurrency ?? 32)
    this.blockedDelayMs = options.blockedDelayMs ?? { min: 200, max: 30_000 }
    this.policy = options.policy ?? defaultCallbackUrlPolicy
    this.log = options.log ?? (() => {})
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
    const dispatcher = new WebhookDispatcher(nc, topology, events, lanes, deliveries, options)
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
    await ensureDurableConsumer(jsm, this.topology.eventStream, {
      durable_name: this.durableName,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
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
        try {
          settle(message, await this.handle(message))
        } finally {
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
  private async handle(message: JsMsg): Promise<Verdict> {
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
      this.log(`webhooks: stream message ${message.seq} on ${message.subject} is not a known event; skipped`)
      return { _tag: "Term", reason: "unreadable event" }
    }
    try {
      return await this.dispatch(decoded.success, message)
    } catch (error) {
      if (this.stopping.signal.aborted) return nak(0)
      this.log(
        `webhooks: ${message.subject} #${message.seq} failed (${String(error)}); retrying in ${INTERNAL_RETRY_MS} ms`,
      )
      return nak(INTERNAL_RETRY_MS)
    }
  }

  private async dispatch(event: SessionEvent, message: JsMsg): Promise<Verdict> {
    const sessionId = event.session_id
    const laneEntry = await this.lanes.get(sessionId)
    const lane: Lane =
      laneEntry !== null && laneEntry.operation === "PUT"
        ? laneEntry.json<Lane>()
        : { next_sequence: 1, routing: emptyRouting, moved_at: 0 }
    if (event.sequence < lane.next_sequence) return ack // already dispatched: a redelivery
    if (event.sequence > lane.next_sequence)
      return nak(await this.blockedDelay(sessionId, lane, laneEntry === null, message.info.deliveryCount))
    const routing = nextRouting(lane.routing, event)
    if (routing.callback_url !== null) {
      const lifecycle = await this.lifecycleOf(event, message.seq)
      if (lifecycle !== undefined) {
        const verdict = await this.deliver(event, lifecycle, routing.account_id, routing.callback_url)
        if (verdict !== undefined) return verdict
      }
    }
    await this.advance(sessionId, laneEntry?.revision ?? 0, laneEntry !== null, event.sequence, routing)
    return ack
  }

  /**
   * How long a message waits behind the lane's head (the first event not yet done): until the
   * head's next attempt when it waits for one; briefly when that attempt is due (in flight);
   * otherwise longer the longer the head has been stuck (a crashed process holds it until
   * ack_wait), so a wedged lane costs one look every `max` and a moving one little latency.
   */
  private async blockedDelay(
    sessionId: string,
    lane: Lane,
    missing: boolean,
    deliveryCount: number,
  ): Promise<number> {
    const { min, max } = this.blockedDelayMs
    const now = Date.now()
    const record = (await this.readDelivery(sessionId, lane.next_sequence)).record
    let wait: number
    if (record?.status === "pending" && record.next_attempt_at !== null) {
      const untilDue = Date.parse(record.next_attempt_at) - now
      wait = untilDue > 0 ? untilDue + min : min * (1 + Math.random())
    } else if (missing) {
      // No lane yet: the session's first event has not been dispatched. Back off per redelivery.
      wait = min * 2 ** Math.min(Math.max(deliveryCount - 1, 0), 16)
    } else {
      const stuckFor = Number.isFinite(lane.moved_at) ? now - lane.moved_at : 0
      wait = Math.max(min, stuckFor / 2) * (1 + Math.random() / 2)
    }
    return Math.min(Math.max(wait, min), max)
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
  ): Promise<Verdict | undefined> {
    const current = await this.readDelivery(event.session_id, event.sequence)
    if (current.record !== undefined && current.record.status !== "pending") return undefined
    const dueAt = current.record?.next_attempt_at
    if (dueAt !== undefined && dueAt !== null) {
      // Redelivered before the retry is due (ack_wait ran out in a crashed process): keep the schedule.
      const early = Date.parse(dueAt) - Date.now()
      if (early > EARLY_TOLERANCE_MS) return nak(early)
    }
    const at = new Date()
    const outcome = await this.attempt(lifecycle, accountId, url)
    if (outcome.error === "aborted" && this.stopping.signal.aborted) return nak(0)
    const record = await this.recordAttempt(event, lifecycle, url, at, outcome, current)
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

  /** One signed POST of the lifecycle event to `url`, after checking the URL again. */
  private async attempt(lifecycle: LifecycleEvent, accountId: string, url: string): Promise<AttemptOutcome> {
    const checked = await resolveCallbackUrl(url, this.policy)
    if (Result.isFailure(checked)) return { status_code: null, latency_ms: 0, error: checked.failure.reason }
    const secrets = await this.options.secretsFor(accountId)
    if (secrets.length === 0) return { status_code: null, latency_ms: 0, error: "no_signing_secret" }
    const body = JSON.stringify(toWebhookEnvelope(lifecycle))
    const timestamp = Math.floor(Date.now() / 1000)
    const headers = {
      [WEBHOOK_ID_HEADER]: lifecycle.id,
      [WEBHOOK_TIMESTAMP_HEADER]: String(timestamp),
      [WEBHOOK_SIGNATURE_HEADER]: secrets
        .map((secret) => signWebhook(secret, lifecycle.id, timestamp, body))
        .join(" "),
    }
    return post(checked.success, body, headers, this.requestTimeoutMs, this.stopping.signal)
  }

  /**
   * Appends an attempt to the delivery record (compare-and-set; on a race with another process
   * working on the same message, both attempts are kept) and returns the record as written.
   */
  private async recordAttempt(
    event: SessionEvent,
    lifecycle: LifecycleEvent,
    url: string,
    at: Date,
    outcome: AttemptOutcome,
    read: { readonly record: WebhookDelivery | undefined; readonly revision: number | undefined },
  ): Promise<WebhookDelivery> {
    let current = read
    for (;;) {
      const previous = current.record?.attempts ?? []
      const attempts: ReadonlyArray<WebhookAttempt> = [
        ...previous,
        { attempt: previous.length + 1, at: at.toISOString(), ...outcome },
      ]
      const delay = outcome.error === null ? undefined : retryDelay(this.schedule, attempts.length)
      const settled = current.record?.status === "delivered" || current.record?.status === "failed"
      const status: WebhookDelivery["status"] =
        outcome.error === null
          ? "delivered"
          : settled && current.record !== undefined
            ? current.record.status
            : delay === undefined
              ? "failed"
              : "pending"
      const record: WebhookDelivery = {
        event_id: event.id,
        session_id: event.session_id,
        sequence: event.sequence,
        event: lifecycle.event,
        url,
        status,
        attempts,
        next_attempt_at:
          status === "pending" && delay !== undefined
            ? new Date(Date.now() + withJitter(delay, this.jitter)).toISOString()
            : null,
      }
      const key = deliveryKey(event.session_id, event.sequence)
      try {
        if (current.revision === undefined) await this.deliveries.create(key, JSON.stringify(record))
        else await this.deliveries.update(key, JSON.stringify(record), current.revision)
        return record
      } catch (error) {
        if (!isRevisionConflict(error)) throw error
        current = await this.readDelivery(event.session_id, event.sequence)
      }
    }
  }

  private async readDelivery(
    sessionId: string,
    sequence: number,
  ): Promise<{ readonly record: WebhookDelivery | undefined; readonly revision: number | undefined }> {
    const entry = await this.deliveries.get(deliveryKey(sessionId, sequence))
    if (entry === null) return { record: undefined, revision: undefined }
    if (entry.operation !== "PUT") return { record: undefined, revision: entry.revision }
    let decoded: Result.Result<WebhookDelivery, unknown>
    try {
      decoded = decodeDelivery(entry.json())
    } catch (error) {
      decoded = Result.fail(error)
    }
    return { record: Result.isSuccess(decoded) ? decoded.success : undefined, revision: entry.revision }
  }

  /** Moves the lane past `sequence` (compare-and-set; a lane another process moved is left alone). */
  private async advance(
    sessionId: string,
    revision: number,
    exists: boolean,
    sequence: number,
    routing: EventRouting,
  ): Promise<void> {
    const lane: Lane = { next_sequence: sequence + 1, routing, moved_at: Date.now() }
    let current = { revision, exists }
    for (;;) {
      try {
        if (current.exists) await this.lanes.update(sessionId, JSON.stringify(lane), current.revision)
        else await this.lanes.create(sessionId, JSON.stringify(lane))
        return
      } catch (error) {
        if (!isRevisionConflict(error)) throw error
        const entry = await this.lanes.get(sessionId)
        if (entry !== null && entry.operation === "PUT" && entry.json<Lane>().next_sequence > sequence) return
        current = { revision: entry?.revision ?? 0, exists: entry !== null }
      }
    }
  }

  /**
   * The lifecycle event `event` announces, which needs the session's state after it. Kept per
   * process and folded forward; on a miss, folded from the latest snapshot before it plus the
   * stream. A history that does not fold up to the event is logged and announces nothing.
   */
  private async lifecycleOf(
    event: SessionEvent,
    streamSequence: number,
  ): Promise<LifecycleEvent | undefined> {
    try {
      return toLifecycleEvent(event, await this.stateAfter(event, streamSequence))
    } catch (error) {
      if (!(error instanceof UnappliableEvent) && !(error instanceof UnreadableEvent)) throw error
      this.log(
        `webhooks: ${event.session_id} #${event.sequence} cannot be folded (${error.message}); not sent`,
      )
      return undefined
    }
  }

  private async stateAfter(event: SessionEvent, streamSequence: number): Promise<SessionState> {
    const sessionId = event.session_id
    const cached = this.states.get(sessionId)
    if (cached !== undefined && cached.state.context.sequence === event.sequence) return cached.state
    let base: Folded | undefined =
      cached !== undefined && cached.state.context.sequence < event.sequence ? cached : undefined
    if (base === undefined) {
      const snapshot = await this.snapshots.load(sessionId)
      base =
        snapshot !== undefined && snapshot.state.context.sequence < event.sequence
          ? { state: snapshot.state, streamSequence: snapshot.stream_sequence }
          : { state: initialState, streamSequence: 0 }
    }
    let state = base.state
    if (state.context.sequence === event.sequence - 1) {
      state = foldEvent(state, event)
    } else {
      for await (const stored of this.events.read(sessionId, base.streamSequence)) {
        if (stored.event.sequence > event.sequence) break
        if (stored.event.sequence > state.context.sequence) state = foldEvent(state, stored.event)
        if (stored.event.sequence === event.sequence) break
      }
      if (state.context.sequence !== event.sequence) throw new UnappliableEvent(event, state.value)
    }
    this.states.delete(sessionId)
    this.states.set(sessionId, { state, streamSequence })
    if (this.states.size > STATE_CACHE_SIZE) {
      const oldest = this.states.keys().next().value
      if (oldest !== undefined) this.states.delete(oldest)
    }
    return state
  }
}
