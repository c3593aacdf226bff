/**
 * Alert webhooks: every gateway shares a durable consumer on the AI results stream
 * (`<prefix>-ai-alerts`) and POSTs each fired alert (`SceneIndexed.alerts` with a `callback_url`)
 * signed the Standard Webhooks way, with the same secrets, callback-URL policy (checked again at
 * each attempt) and retry schedule as lifecycle webhooks. Each alert's attempts are recorded in a
 * KV bucket (`<prefix>_alert_deliveries`, key `<session_id>.<alert_id>.<scene>`, compare-and-set;
 * the protocol's `AlertDelivery`), so whoever gets a redelivered result continues the schedule, a
 * delivered alert is never sent again, and `GET /capture/session/:id/webhooks` lists a session's
 * alert deliveries (`AlertDeliveryLog`). The same `webhook-id` (`<alert_id>.<scene>`) on every
 * attempt lets a receiver drop a repeat after a crash between POST and record. A record that does
 * not decode (written by a newer version, or corrupt) is logged and left as it is: that alert is
 * not sent, since whether it was is unknown.
 */
import { type AiStore, decodeAiEvent } from "@capture/ai"
import {
  isMessageNotFound,
  isRevisionConflict,
  type Later,
  later,
  startDurableWork,
} from "@capture/jetstream"
import type { AiEvent, AiEventOf, AlertDelivery, FiredAlert, WebhookSecret } from "@capture/protocol"
import type { TopologyOptions } from "@capture/session-actor"
import { DeliverPolicy, jetstreamManager, type StoredMsg } from "@nats-io/jetstream"
import type { KV } from "@nats-io/kv"
import type { NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import type { CallbackUrlPolicy } from "../webhooks/CallbackUrlPolicy.js"
import { ParkedRetries } from "../webhooks/ParkedRetries.js"
import {
  defaultJitter,
  defaultRetrySchedule,
  type RetrySchedule,
  retryDelay,
  withJitter,
} from "../webhooks/RetrySchedule.js"
import { postSignedJson } from "../webhooks/WebhookPost.js"
import {
  alertDeliveryKey,
  legacyAlertDeliveryKey,
  openAlertDeliveries,
  openAlertRetries,
  readAlertDeliveryEntry,
  readLegacyAlertDeliveryEntry,
} from "./AlertDeliveryLog.js"

export interface AlertDispatcherOptions {
  readonly secretsFor: (accountId: string) => Promise<ReadonlyArray<WebhookSecret>>
  readonly policy: CallbackUrlPolicy
  readonly schedule?: RetrySchedule | undefined
  readonly requestTimeoutMs?: number | undefined
  readonly ackWaitMs?: number | undefined
  /** The shared consumer's limit of unacknowledged messages, used when this process creates it (default 1 000). */
  readonly maxAckPending?: number | undefined
  /** How long a claim on a parked result holds before another gateway takes it over. */
  readonly retryLeaseMs?: number | undefined
  readonly log?: ((message: string) => void) | undefined
}

/** The alert webhook's body (VideoDB's documented fields, and which result fired it). */
export const alertWebhookBody = (event: AiEventOf<"SceneIndexed">, alert: FiredAlert) => ({
  type: "alert",
  alert_id: alert.alert_id,
  event_id: alert.event_id,
  label: alert.label,
  confidence: alert.confidence,
  explanation: alert.explanation,
  timestamp: event.time,
  /** Unix seconds, as scenes and `generateStream` use. */
  start_time: event.data.start / 1000,
  end_time: event.data.end / 1000,
  rtstream_id: event.rtstream_id,
  rtstream_name: alert.routing.rtstream_name,
  index_id: event.data.index_id,
  text: event.data.text,
})

export class AlertDispatcher {
  /** Alert webhooks this instance delivered (for tests and health). */
  delivered = 0
  private stopWork: () => Promise<void> = async () => {}
  private readonly stopping = new AbortController()

  private constructor(
    private readonly bucket: KV,
    private readonly retries: ParkedRetries,
    private readonly readResult: (streamSequence: number) => Promise<AiEvent | undefined>,
    private readonly options: AlertDispatcherOptions,
    private readonly log: (message: string) => void,
  ) {}

  static async start(
    nc: NatsConnection,
    ai: AiStore,
    topology: TopologyOptions,
    options: AlertDispatcherOptions,
  ): Promise<AlertDispatcher> {
    const [bucket, retryBucket, jsm] = await Promise.all([
      openAlertDeliveries(nc, topology),
      openAlertRetries(nc, topology),
      jetstreamManager(nc),
    ])
    const log = options.log ?? (() => {})
    const requestTimeoutMs = options.requestTimeoutMs ?? 15_000
    const retries = new ParkedRetries(retryBucket, {
      name: "alerts",
      bucketName: `${topology.prefix}_alert_retries`,
      leaseMs: options.retryLeaseMs ?? 2 * requestTimeoutMs + 10_000,
      concurrency: 8,
      log,
    })
    // A parked result is read back by its stream sequence; one purged meanwhile is gone.
    const readResult = async (streamSequence: number): Promise<AiEvent | undefined> => {
      let stored: StoredMsg | null
      try {
        stored = await jsm.streams.getMessage(ai.topology.stream, { seq: streamSequence })
      } catch (error) {
        if (isMessageNotFound(error)) return undefined
        throw error
      }
      if (stored === null) return undefined
      const decoded = decodeAiEvent(stored.json())
      return Result.isSuccess(decoded) ? decoded.success : undefined
    }
    const dispatcher = new AlertDispatcher(bucket, retries, readResult, options, log)
    const work = await startDurableWork(nc, {
      stream: ai.topology.stream,
      durable: `${topology.prefix}-ai-alerts`,
      filterSubject: ai.topology.subjects,
      deliverPolicy: DeliverPolicy.New,
      parallel: 8,
      ackWaitMs: options.ackWaitMs ?? 30_000,
      retryDelayMs: 2_000,
      ...(options.maxAckPending === undefined ? {} : { maxAckPending: options.maxAckPending }),
      decode: (message) => {
        try {
          return decodeAiEvent(message.json())
        } catch (error) {
          return Result.fail(error)
        }
      },
      handle: (event, message) => dispatcher.handle(event, message.seq),
      log,
    })
    dispatcher.stopWork = work.stop
    await retries.start((key, revision) => dispatcher.runParked(key, revision))
    return dispatcher
  }

  async stop(): Promise<void> {
    this.stopping.abort()
    await this.stopWork()
    await this.retries.stop()
  }

  /**
   * A result from the shared consumer: one attempt at each alert it fired; one waiting for a
   * retry parks the result in the schedule (key: its stream sequence), so the message is
   * acknowledged and holds no slot of the consumer while it waits.
   */
  private async handle(event: AiEvent, streamSequence: number): Promise<unknown> {
    if (event.type !== "SceneIndexed" || !(event.data.alerts ?? []).some((a) => a.callback_url !== null)) {
      return undefined
    }
    const outcome = await this.deliverAll(event)
    if (outcome === undefined) return undefined
    if (this.stopping.signal.aborted) return outcome // Put back for another gateway.
    await this.retries.park(String(streamSequence), Date.now() + outcome.delayMs)
    return undefined
  }

  /** A parked result came due (this process holds its retry record at `revision`). */
  private async runParked(key: string, revision: number): Promise<void> {
    const event = await this.readResult(Number(key))
    const outcome =
      event === undefined || event.type !== "SceneIndexed" ? undefined : await this.deliverAll(event)
    if (this.stopping.signal.aborted) {
      await this.retries.reschedule(key, revision, Date.now()).catch(() => undefined)
      return
    }
    if (outcome === undefined) await this.retries.release(key, revision)
    else await this.retries.reschedule(key, revision, Date.now() + outcome.delayMs)
  }

  /** One attempt at each fired alert still to deliver; `later` while any waits for a retry. */
  private async deliverAll(event: AiEventOf<"SceneIndexed">): Promise<Later | undefined> {
    let wait: number | undefined
    for (const alert of event.data.alerts ?? []) {
      if (alert.callback_url === null) continue
      const delay = await this.deliver(event, alert, alert.callback_url)
      if (delay !== undefined) wait = Math.min(wait ?? delay, delay)
    }
    return wait === undefined ? undefined : later(wait)
  }

  /** Undefined once the alert is delivered or failed for good; else the ms until its next attempt. */
  private async deliver(
    event: AiEventOf<"SceneIndexed">,
    alert: FiredAlert,
    url: string,
  ): Promise<number | undefined> {
    const key = alertDeliveryKey(event.session_id, alert.alert_id, event.data.scene)
    const webhookId = `${alert.alert_id}.${event.data.scene}`
    const entry = await this.bucket.get(key)
    let read = readAlertDeliveryEntry(entry)
    if (read._tag === "Absent") {
      // Recorded before keys named the session (an upgrade): its attempts so far count.
      read = readLegacyAlertDeliveryEntry(
        await this.bucket.get(legacyAlertDeliveryKey(alert.alert_id, event.data.scene)),
        {
          alert_id: alert.alert_id,
          event_id: alert.event_id,
          session_id: event.session_id,
          rtstream_id: event.rtstream_id,
          index_id: event.data.index_id,
        },
      )
    }
    if (read._tag === "Unreadable") {
      // Whether and how often it was sent is unknown: the record is left as it is, for someone to look at.
      this.log(`alerts: ${key}: its delivery record is unreadable (${read.reason}); not sent`)
      return undefined
    }
    const current = read._tag === "Readable" ? read.record : undefined
    if (current !== undefined && current.status !== "pending") return undefined
    if (current?.next_attempt_at != null) {
      const early = Date.parse(current.next_attempt_at) - Date.now()
      if (early > 25) return early
    }
    const at = new Date()
    const outcome = await postSignedJson(webhookId, JSON.stringify(alertWebhookBody(event, alert)), url, {
      policy: this.options.policy,
      secrets: () => this.options.secretsFor(alert.routing.account_id),
      timeoutMs: this.options.requestTimeoutMs ?? 15_000,
      signal: this.stopping.signal,
    })
    const attempts = [
      ...(current?.attempts ?? []),
      { attempt: (current?.attempts.length ?? 0) + 1, at: at.toISOString(), ...outcome },
    ]
    const delay =
      outcome.error === null
        ? undefined
        : retryDelay(this.options.schedule ?? defaultRetrySchedule, attempts.length)
    const record: AlertDelivery = {
      alert_id: alert.alert_id,
      event_id: alert.event_id,
      session_id: event.session_id,
      rtstream_id: event.rtstream_id,
      index_id: event.data.index_id,
      scene: event.data.scene,
      url,
      status: outcome.error === null ? "delivered" : delay === undefined ? "failed" : "pending",
      attempts,
      next_attempt_at:
        outcome.error === null || delay === undefined
          ? null
          : new Date(Date.now() + withJitter(delay, defaultJitter)).toISOString(),
    }
    try {
      if (entry === null) await this.bucket.create(key, JSON.stringify(record))
      else await this.bucket.update(key, JSON.stringify(record), entry.revision)
    } catch (error) {
      // Another gateway recorded an attempt meanwhile: look again at the next delivery.
      if (!isRevisionConflict(error)) throw error
      return 250
    }
    if (record.status === "delivered") this.delivered++
    else
      this.log(
        `alerts: ${key} attempt ${attempts.length} to ${url} failed (${outcome.error}); ${record.status}`,
      )
    return record.status === "pending" && record.next_attempt_at !== null
      ? Math.max(0, Date.parse(record.next_attempt_at) - Date.now())
      : undefined
  }
}
