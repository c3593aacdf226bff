/**
 * Delivery records: one `WebhookDelivery` per event sent (every attempt, the outcome, when the
 * next attempt is due), in the deliveries bucket. The dispatcher appends each attempt with
 * compare-and-set; whoever works on the event next reads the attempt count here and continues the
 * schedule. A record that does not decode (written by a newer version, or corrupt) is reported as
 * unreadable: never guessed at, never overwritten.
 */
import { isRevisionConflict } from "@capture/jetstream"
import {
  decodeUnknown,
  type LifecycleEvent,
  type SessionEvent,
  type WebhookAttempt,
  WebhookDelivery,
} from "@capture/protocol"
import type { KV, KvEntry } from "@nats-io/kv"
import { Result } from "effect"
import { type RetrySchedule, retryDelay, withJitter } from "./RetrySchedule.js"
import { deliveryKey } from "./WebhookBuckets.js"
import type { AttemptOutcome } from "./WebhookPost.js"

/**
 * A delivery record as read. `revision` is what the next write compares against: undefined when
 * the key was never written (the write creates it).
 */
export type DeliveryRead =
  | { readonly _tag: "Absent"; readonly revision: number | undefined }
  | { readonly _tag: "Readable"; readonly record: WebhookDelivery; readonly revision: number }
  | { readonly _tag: "Unreadable"; readonly reason: string; readonly revision: number }

/** A delivery record this version cannot read, met while writing the next attempt. */
export class UnreadableDeliveryRecord extends Error {
  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super(`delivery record ${key} is unreadable: ${reason}`)
  }
}

const decodeDelivery = decodeUnknown(WebhookDelivery)

/** Decodes a deliveries-bucket entry (null: never written). */
export const readDeliveryEntry = (entry: KvEntry | null): DeliveryRead => {
  if (entry === null) return { _tag: "Absent", revision: undefined }
  if (entry.operation !== "PUT") return { _tag: "Absent", revision: entry.revision }
  let decoded: Result.Result<WebhookDelivery, unknown>
  try {
    decoded = decodeDelivery(entry.json())
  } catch (error) {
    decoded = Result.fail(error)
  }
  return Result.isSuccess(decoded)
    ? { _tag: "Readable", record: decoded.success, revision: entry.revision }
    : { _tag: "Unreadable", reason: reasonOf(decoded.failure), revision: entry.revision }
}

const reasonOf = (failure: unknown): string => (failure instanceof Error ? failure.message : String(failure))

/** How attempts are spaced: the schedule's delays, spread by `jitter`. */
export interface AttemptSpacing {
  readonly schedule: RetrySchedule
  readonly jitter: number
}

/**
 * The record after one more attempt: delivered on success; otherwise pending with the next
 * attempt's time while the schedule has delays left, then failed. A record another process
 * already settled keeps its status (both attempts are kept).
 */
export const withAttempt = (
  current: WebhookDelivery | undefined,
  delivery: { readonly event: SessionEvent; readonly lifecycle: LifecycleEvent; readonly url: string },
  at: Date,
  outcome: AttemptOutcome,
  spacing: AttemptSpacing,
): WebhookDelivery => {
  const previous = current?.attempts ?? []
  const attempts: ReadonlyArray<WebhookAttempt> = [
    ...previous,
    { attempt: previous.length + 1, at: at.toISOString(), ...outcome },
  ]
  const delay = outcome.error === null ? undefined : retryDelay(spacing.schedule, attempts.length)
  const settled = current?.status === "delivered" || current?.status === "failed"
  const status: WebhookDelivery["status"] =
    outcome.error === null
      ? "delivered"
      : settled && current !== undefined
        ? current.status
        : delay === undefined
          ? "failed"
          : "pending"
  const { event, lifecycle, url } = delivery
  return {
    event_id: event.id,
    session_id: event.session_id,
    sequence: event.sequence,
    event: lifecycle.event,
    url,
    status,
    attempts,
    next_attempt_at:
      status === "pending" && delay !== undefined
        ? new Date(Date.now() + withJitter(delay, spacing.jitter)).toISOString()
        : null,
  }
}

/** The dispatcher's side of the deliveries bucket. */
export class DeliveryRecords {
  constructor(
    private readonly bucket: KV,
    private readonly spacing: AttemptSpacing,
  ) {}

  /** The record of a session's delivery of its event number `sequence`. */
  async read(sessionId: string, sequence: number): Promise<DeliveryRead> {
    return readDeliveryEntry(await this.bucket.get(deliveryKey(sessionId, sequence)))
  }

  /**
   * Appends an attempt to the delivery record, starting from `read` (compare-and-set; on a race
   * with another process working on the same message, both attempts are kept) and returns the
   * record as written. Throws `UnreadableDeliveryRecord` when the race was with a record this
   * version cannot read: it is left as it is.
   */
  async recordAttempt(
    delivery: { readonly event: SessionEvent; readonly lifecycle: LifecycleEvent; readonly url: string },
    at: Date,
    outcome: AttemptOutcome,
    read: DeliveryRead,
  ): Promise<WebhookDelivery> {
    const { event } = delivery
    const key = deliveryKey(event.session_id, event.sequence)
    let current = read
    for (;;) {
      if (current._tag === "Unreadable") throw new UnreadableDeliveryRecord(key, current.reason)
      const record = withAttempt(
        current._tag === "Readable" ? current.record : undefined,
        delivery,
        at,
        outcome,
        this.spacing,
      )
      try {
        if (current.revision === undefined) await this.bucket.create(key, JSON.stringify(record))
        else await this.bucket.update(key, JSON.stringify(record), current.revision)
        return record
      } catch (error) {
        if (!isRevisionConflict(error)) throw error
        current = await this.read(event.session_id, event.sequence)
      }
    }
  }
}
