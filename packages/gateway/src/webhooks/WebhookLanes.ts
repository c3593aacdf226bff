/**
 * Lanes: each session's webhooks go out in its order, across processes. One KV record per session
 * (lanes bucket, key `<session_id>`) holds the sequence of the next event to dispatch (the lane's
 * head), the routing (account, callback URL) in force before it, and where in the event stream
 * the head is looked for. Only the head is worked on; an earlier event is a redelivery. The lane
 * moves on by compare-and-set once its head is done, so two processes never both move it.
 *
 * A lane is *flowing* while its head is worked on from the shared consumer, and *parked* while
 * its head waits for a retry in the schedule (`WebhookRetries`): then the consumer acknowledges
 * the session's later events after noting them on the lane (`waiting_through`), and whoever
 * runs the retry delivers them from the event stream behind the head. A lane that does not
 * decode (written by a newer version, or corrupt) is reported as unreadable and never overwritten.
 *
 * Most events find their lane as this process left it after the session's previous event: that
 * lane is not read again, the compare-and-set of the write that moves it stands for the read,
 * and a write that finds it moved (another process, a redelivery) makes the next look read it.
 * A session's first event reads: its lane may exist (a redelivery) or be unreadable.
 */
import { isRevisionConflict } from "@capture/jetstream"
import { decodeUnknown, type WebhookDelivery } from "@capture/protocol"
import { emptyRouting } from "@capture/session-actor"
import type { KV } from "@nats-io/kv"
import { Result, Schema } from "effect"

/** A lane as stored: internal to the dispatcher, so its schema lives here rather than in protocol. */
const Lane = Schema.Struct({
  next_sequence: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
  routing: Schema.Struct({
    account_id: Schema.String,
    end_user_id: Schema.String,
    callback_url: Schema.NullOr(Schema.String),
    ws_connection_ids: Schema.Array(Schema.String),
  }),
  /** When the lane last moved (ms since epoch): how long its head has been waiting. */
  moved_at: Schema.Finite,
  /** The head is at a stream sequence after this one (0: anywhere in the session's subject). */
  after_stream_sequence: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  /** The head waits in the retry schedule; later events are delivered from the stream by its runner. */
  parked: Schema.optionalKey(Schema.Boolean),
  /** While parked: the highest later event the consumer has seen and acknowledged. */
  waiting_through: Schema.optionalKey(Schema.Int),
})

/** A session's progress: the next event to dispatch and the routing in force before it. */
export type Lane = typeof Lane.Type

/** The lane of a session none of whose events has been dispatched. */
export const startingLane: Lane = { next_sequence: 1, routing: emptyRouting, moved_at: 0 }

/**
 * A lane as read. `revision` is what moving it compares against: undefined when the key was
 * never written (moving creates it). `present` is false when there is no lane (never written,
 * deleted, or expired): `lane` is then the starting lane.
 */
export type LaneRead =
  | {
      readonly _tag: "Readable"
      readonly lane: Lane
      readonly revision: number | undefined
      readonly present: boolean
    }
  | { readonly _tag: "Unreadable"; readonly reason: string; readonly revision: number }

export type ReadableLane = Extract<LaneRead, { _tag: "Readable" }>

const decodeLane = decodeUnknown(Lane)

/** Sessions whose last lane write this process remembers. */
const REMEMBERED_LANES = 10_000

export class WebhookLanes {
  /** Per session, the lane this process wrote last and its revision; `read`: look it up next time. */
  private readonly written = new Map<string, { readonly lane: Lane; readonly revision: number } | "read">()

  constructor(private readonly bucket: KV) {}

  /**
   * The lane an event at `sequence` of the session is expected to find, as this process knows it
   * without reading: the lane it wrote last, flowing, whose head is that event. Undefined when
   * that is not known: `read` it.
   */
  expected(sessionId: string, sequence: number): ReadableLane | undefined {
    const written = this.written.get(sessionId)
    if (
      written === undefined ||
      written === "read" ||
      written.lane.next_sequence !== sequence ||
      written.lane.parked === true
    )
      return undefined
    return { _tag: "Readable", lane: written.lane, revision: written.revision, present: true }
  }

  /** A session's lane; the starting lane when it has none (or it was deleted or expired). */
  async read(sessionId: string): Promise<LaneRead> {
    const entry = await this.bucket.get(sessionId)
    if (entry === null) return { _tag: "Readable", lane: startingLane, revision: undefined, present: false }
    if (entry.operation !== "PUT") {
      return { _tag: "Readable", lane: startingLane, revision: entry.revision, present: false }
    }
    let decoded: Result.Result<Lane, unknown>
    try {
      decoded = decodeLane(entry.json())
    } catch (error) {
      decoded = Result.fail(error)
    }
    return Result.isSuccess(decoded)
      ? { _tag: "Readable", lane: decoded.success, revision: entry.revision, present: true }
      : {
          _tag: "Unreadable",
          reason: decoded.failure instanceof Error ? decoded.failure.message : String(decoded.failure),
          revision: entry.revision,
        }
  }

  /**
   * Writes `lane` if the session's lane is still at `revision` (compare-and-set). False when
   * another process wrote it meanwhile: the caller reads it again and decides anew.
   */
  async write(sessionId: string, revision: number | undefined, lane: Lane): Promise<boolean> {
    try {
      const written =
        revision === undefined
          ? await this.bucket.create(sessionId, JSON.stringify(lane))
          : await this.bucket.update(sessionId, JSON.stringify(lane), revision)
      this.remember(sessionId, { lane, revision: written })
      return true
    } catch (error) {
      this.remember(sessionId, "read")
      if (!isRevisionConflict(error)) throw error
      return false
    }
  }

  private remember(
    sessionId: string,
    written: { readonly lane: Lane; readonly revision: number } | "read",
  ): void {
    this.written.delete(sessionId)
    this.written.set(sessionId, written)
    if (this.written.size > REMEMBERED_LANES) {
      const oldest = this.written.keys().next().value
      if (oldest !== undefined) this.written.delete(oldest)
    }
  }
}

/** The lane moved past the event at `sequence` (stored at `streamSequence`), with `routing` as of it. */
export const passed = (
  lane: Lane,
  sequence: number,
  streamSequence: number,
  routing: Lane["routing"],
): Lane => ({
  ...lane,
  next_sequence: sequence + 1,
  routing,
  moved_at: Date.now(),
  after_stream_sequence: streamSequence,
})

/** Bounds of the wait before a message blocked behind its lane's head is looked at again. */
export interface BlockedDelayBounds {
  readonly min: number
  readonly max: number
}

/**
 * How long a message waits behind the lane's head (the first event not yet done): until the
 * head's next attempt when it waits for one (`head`, its delivery record); briefly when that
 * attempt is due (in flight); otherwise longer the longer the head has been stuck (a crashed
 * process holds it until ack_wait), so a wedged lane costs one look every `max` and a moving one
 * little latency. `deliveryCount` counts the waiting message's deliveries.
 */
export const blockedDelay = (
  lane: ReadableLane,
  head: WebhookDelivery | undefined,
  deliveryCount: number,
  { min, max }: BlockedDelayBounds,
  now = Date.now(),
): number => {
  let wait: number
  if (head?.status === "pending" && head.next_attempt_at !== null) {
    const untilDue = Date.parse(head.next_attempt_at) - now
    wait = untilDue > 0 ? untilDue + min : min * (1 + Math.random())
  } else if (!lane.present) {
    // No lane yet: the session's first event has not been dispatched. Back off per redelivery.
    wait = min * 2 ** Math.min(Math.max(deliveryCount - 1, 0), 16)
  } else {
    wait = Math.max(min, (now - lane.lane.moved_at) / 2) * (1 + Math.random() / 2)
  }
  return Math.min(Math.max(wait, min), max)
}
