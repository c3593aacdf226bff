/**
 * Publish-with-ack to JetStream over one shared reply subscription.
 *
 * nats.js answers each `js.publish` through a request object that arms its own timer and, once
 * the reply is in, allocates an Error with a captured stack to cancel itself: ~15 µs of client
 * CPU per publish, more than the actor host's own work for a command. Here one wildcard
 * subscription takes every ack, a map finds the append waiting for it, and one periodic sweep
 * fails appends past their deadline. Answers and failures are JetStream's, as the same error
 * classes `js.publish` throws (`JetStreamApiError` carries the API error code), so the predicates
 * of `JetStreamErrors` apply.
 *
 * ```ts
 * const publisher = new JetStreamPublisher(nc)
 * const ack = await publisher.publish(subject, data, { msgId: commandId, lastSubjectSequence: 41 })
 * ```
 */
import {
  type ApiError,
  JetStreamApiError,
  JetStreamError,
  JsHeaders,
  type PubAck,
  PubHeaders,
} from "@nats-io/jetstream"
import {
  ClosedConnectionError,
  createInbox,
  headers,
  type Msg,
  type NatsConnection,
  NoRespondersError,
  type Subscription,
  TimeoutError,
} from "@nats-io/transport-node"
import { TRACEPARENT } from "./Telemetry.js"

/** What the stream must hold for the publish to be stored (JetStream's publish headers). */
export interface PublishExpectations {
  /** Deduplication id: a second publish with it inside the stream's window is not stored again. */
  readonly msgId?: string
  /** The subject's last stored sequence must be this (0: no message on the subject yet). */
  readonly lastSubjectSequence?: number
  /** The message replaces every earlier one on its subject (`Nats-Rollup: sub`; the stream must allow it). */
  readonly rollUpSubject?: boolean
}

interface Waiting {
  readonly resolve: (ack: PubAck) => void
  readonly reject: (error: Error) => void
  readonly subject: string
  /** `performance.now()` after which the publish fails with a timeout (monotonic: the wall clock may jump). */
  readonly deadline: number
}

interface AckAnswer {
  readonly stream?: unknown
  readonly seq?: unknown
  readonly duplicate?: unknown
  readonly domain?: unknown
  readonly error?: ApiError
}

/** Publishes to JetStream and waits for each ack, with one reply subscription for all of them. */
export class JetStreamPublisher {
  // Insertion order is deadline order (one timeout for all), so a sweep stops at the first live one.
  private readonly waiting = new Map<string, Waiting>()
  private inbox: string | undefined
  private subscription: Subscription | undefined
  private sweeper: ReturnType<typeof setInterval> | undefined
  private nextToken = 0
  private closed = false

  constructor(
    private readonly nc: NatsConnection,
    /** How long a publish waits for its ack (nats.js's default for JetStream requests). */
    readonly timeoutMs = 5_000,
  ) {}

  /**
   * Publishes `data` on `subject` and resolves with JetStream's ack. Rejects with
   * `JetStreamApiError` when JetStream refuses it (e.g. a wrong last subject sequence),
   * `NoRespondersError` when no stream takes the subject, `TimeoutError` when no ack came in time
   * (the message may still have been stored: publish again with the same `msgId`), and
   * `ClosedConnectionError` once the publisher or its connection is closed. `traceparent`, when
   * given, travels in the message's headers to whoever consumes it.
   */
  publish(
    subject: string,
    data: Uint8Array,
    expect: PublishExpectations = {},
    traceparent?: string,
  ): Promise<PubAck> {
    return new Promise<PubAck>((resolve, reject) => {
      if (this.closed || this.nc.isClosed()) {
        reject(new ClosedConnectionError())
        return
      }
      const inbox = this.inbox ?? this.subscribe()
      const token = (this.nextToken++).toString(36)
      const publishHeaders = headers()
      if (expect.msgId !== undefined) publishHeaders.set(PubHeaders.MsgIdHdr, expect.msgId)
      if (expect.lastSubjectSequence !== undefined) {
        publishHeaders.set(PubHeaders.ExpectedLastSubjectSequenceHdr, `${expect.lastSubjectSequence}`)
      }
      if (expect.rollUpSubject === true) publishHeaders.set(JsHeaders.RollupHdr, JsHeaders.RollupValueSubject)
      if (traceparent !== undefined) publishHeaders.set(TRACEPARENT, traceparent)
      this.waiting.set(token, { resolve, reject, subject, deadline: performance.now() + this.timeoutMs })
      this.sweeper ??= this.startSweeping()
      try {
        this.nc.publish(subject, data, { reply: inbox + token, headers: publishHeaders })
      } catch (error) {
        this.waiting.delete(token)
        reject(asError(error))
      }
    })
  }

  /** How many publishes wait for their ack. */
  get pending(): number {
    return this.waiting.size
  }

  /** Stops taking acks; publishes still waiting fail with `ClosedConnectionError`. */
  close(): void {
    this.closed = true
    this.subscription?.unsubscribe()
    this.detach(new ClosedConnectionError())
  }

  private subscribe(): string {
    const inbox = `${createInbox()}.`
    const subscription = this.nc.subscribe(`${inbox}*`, {
      callback: (error, msg) => {
        if (error === null) return this.receive(inbox, msg)
        subscription.unsubscribe()
        this.detach(error)
      },
    })
    // The subscription ends with the connection (or a permissions error): nothing more will answer.
    subscription.closed.then(
      (error) => this.subscription === subscription && this.detach(error ?? new ClosedConnectionError()),
      (error: unknown) => this.subscription === subscription && this.detach(asError(error)),
    )
    this.inbox = inbox
    this.subscription = subscription
    return inbox
  }

  private receive(inbox: string, msg: Msg): void {
    const token = msg.subject.slice(inbox.length)
    const waiting = this.waiting.get(token)
    // An ack after its publish timed out: nobody waits for it any more.
    if (waiting === undefined) return
    this.waiting.delete(token)
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      waiting.reject(new NoRespondersError(waiting.subject))
      return
    }
    let answer: AckAnswer
    try {
      answer = msg.json<AckAnswer>()
    } catch {
      waiting.reject(new JetStreamError("invalid ack response"))
      return
    }
    if (answer.error !== undefined) {
      waiting.reject(new JetStreamApiError(answer.error))
      return
    }
    if (typeof answer.stream !== "string" || answer.stream === "" || typeof answer.seq !== "number") {
      waiting.reject(new JetStreamError("invalid ack response"))
      return
    }
    waiting.resolve({
      stream: answer.stream,
      seq: answer.seq,
      duplicate: answer.duplicate === true,
      ...(typeof answer.domain === "string" ? { domain: answer.domain } : {}),
    })
  }

  private startSweeping(): ReturnType<typeof setInterval> {
    const sweeper = setInterval(
      () => {
        const now = performance.now()
        for (const [token, waiting] of this.waiting) {
          if (waiting.deadline > now) break
          this.waiting.delete(token)
          waiting.reject(new TimeoutError())
        }
        if (this.waiting.size === 0) {
          clearInterval(sweeper)
          this.sweeper = undefined
        }
      },
      Math.max(10, Math.min(250, this.timeoutMs / 4)),
    )
    sweeper.unref()
    return sweeper
  }

  /** Forgets the subscription (a later publish subscribes again) and fails every waiting publish. */
  private detach(error: Error): void {
    this.inbox = undefined
    this.subscription = undefined
    if (this.sweeper !== undefined) clearInterval(this.sweeper)
    this.sweeper = undefined
    const waiting = [...this.waiting.values()]
    this.waiting.clear()
    for (const w of waiting) w.reject(error)
  }
}

const asError = (error: unknown): Error => (error instanceof Error ? error : new Error(String(error)))
