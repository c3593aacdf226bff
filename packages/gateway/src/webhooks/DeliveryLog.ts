/**
 * The delivery log: one record per webhook delivery (`WebhookDelivery`: every attempt, the
 * outcome, the next attempt's time) in a KV bucket keyed `<session_id>.<sequence>`. The
 * dispatcher writes it (`DeliveryRecords`); this is the read side the API serves per session.
 */
import type { WebhookDelivery } from "@capture/protocol"
import type { Topology } from "@capture/session-actor"
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream"
import type { KV } from "@nats-io/kv"
import { readDeliveryEntry } from "./DeliveryRecords.js"
import { deliveryKey, openWebhookBucket, webhookBucketNames } from "./WebhookBuckets.js"

// Session ids are `cap-` plus [A-Za-z0-9_-]: anything else (wildcards, dots) never names one.
const sessionKeyPattern = /^[A-Za-z0-9_-]{1,128}$/

export class DeliveryLog {
  private constructor(
    private readonly bucket: KV,
    private readonly jsm: JetStreamManager,
    private readonly bucketName: string,
  ) {}

  /** Opens the log of a deployment (creating the bucket if no dispatcher has yet). */
  static async open(topology: Topology): Promise<DeliveryLog> {
    const [bucket, jsm] = await Promise.all([
      openWebhookBucket(topology.nc, topology.options, "deliveries"),
      jetstreamManager(topology.nc),
    ])
    return new DeliveryLog(bucket, jsm, webhookBucketNames(topology.options.prefix).deliveries)
  }

  /** A session's deliveries in event order (empty for an unknown session). */
  async list(sessionId: string): Promise<ReadonlyArray<WebhookDelivery>> {
    if (!sessionKeyPattern.test(sessionId)) return []
    // The stream's subject list, not `kv.keys()`: its consumer can wait for a heartbeat (seconds)
    // when a key is rewritten while it runs, which the dispatcher does on every attempt.
    const subjectPrefix = `$KV.${this.bucketName}.`
    const info = await this.jsm.streams.info(`KV_${this.bucketName}`, {
      subjects_filter: `${subjectPrefix}${sessionId}.*`,
    })
    const keys = Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(subjectPrefix.length))
    const deliveries = await Promise.all(keys.map((key) => this.read(key)))
    return deliveries
      .filter((delivery): delivery is WebhookDelivery => delivery !== undefined)
      .sort((a, b) => a.sequence - b.sequence)
  }

  /** One delivery, by session and event sequence. */
  async get(sessionId: string, sequence: number): Promise<WebhookDelivery | undefined> {
    if (!sessionKeyPattern.test(sessionId) || !Number.isInteger(sequence)) return undefined
    return this.read(deliveryKey(sessionId, sequence))
  }

  private async read(key: string): Promise<WebhookDelivery | undefined> {
    const read = readDeliveryEntry(await this.bucket.get(key))
    // A record this version cannot read (written by a newer one) is left out rather than failing the list.
    return read._tag === "Readable" ? read.record : undefined
  }
}
