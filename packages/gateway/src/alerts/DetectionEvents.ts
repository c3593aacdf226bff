/**
 * An account's detection events (VideoDB's `conn.createEvent(prompt, label)`): a KV bucket per
 * deployment (`<prefix>_ai_events`), key `<account_id>.<event_id>`. An alert copies its event's
 * label and prompt when it is attached, so AI workers never read this bucket.
 */
import { createRacing } from "@capture/jetstream"
import {
  type DetectionEventId,
  type DetectionEventRequest,
  DetectionEventView,
  decodeUnknown,
  newDetectionEventId,
} from "@capture/protocol"
import type { TopologyOptions } from "@capture/session-actor"
import { jetstream } from "@nats-io/jetstream"
import { type KV, Kvm } from "@nats-io/kv"
import type { NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"

const decodeView = decodeUnknown(DetectionEventView)
// Account ids are `acct-…` (letters, digits, `_`, `-`): anything else never names one.
const accountPattern = /^[A-Za-z0-9_-]{1,128}$/

export class DetectionEvents {
  private constructor(private readonly bucket: KV) {}

  /** Creates (if missing) and opens the bucket. Safe from many processes at once. */
  static async open(nc: NatsConnection, options: TopologyOptions): Promise<DetectionEvents> {
    const bucket = await createRacing(() =>
      new Kvm(jetstream(nc)).create(`${options.prefix}_ai_events`, {
        replicas: options.replicas,
        history: 1,
      }),
    )
    return new DetectionEvents(bucket)
  }

  async create(accountId: string, request: DetectionEventRequest): Promise<DetectionEventView> {
    if (!accountPattern.test(accountId)) throw new Error(`account id ${accountId} cannot be a key`)
    const view: DetectionEventView = {
      event_id: newDetectionEventId(),
      event_prompt: request.event_prompt.trim(),
      label: request.label.trim(),
      created_at: new Date().toISOString(),
    }
    await this.bucket.create(`${accountId}.${view.event_id}`, JSON.stringify(view))
    return view
  }

  /** One event of the account; undefined when it has none of that id. */
  async get(accountId: string, eventId: DetectionEventId): Promise<DetectionEventView | undefined> {
    if (!accountPattern.test(accountId)) return undefined
    const entry = await this.bucket.get(`${accountId}.${eventId}`)
    if (entry === null || entry.operation !== "PUT") return undefined
    const decoded = decodeView(entry.json())
    return Result.isSuccess(decoded) ? decoded.success : undefined
  }

  /** The account's events, oldest first. */
  async list(accountId: string): Promise<ReadonlyArray<DetectionEventView>> {
    if (!accountPattern.test(accountId)) return []
    const keys: Array<string> = []
    for await (const key of await this.bucket.keys(`${accountId}.*`)) keys.push(key)
    const views = await Promise.all(
      keys.map(async (key) => {
        const entry = await this.bucket.get(key)
        if (entry === null || entry.operation !== "PUT") return undefined
        const decoded = decodeView(entry.json())
        return Result.isSuccess(decoded) ? decoded.success : undefined
      }),
    )
    return views
      .filter((view): view is DetectionEventView => view !== undefined)
      .sort((a, b) => a.created_at.localeCompare(b.created_at) || a.event_id.localeCompare(b.event_id))
  }
}
