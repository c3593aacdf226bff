/**
 * The delivery log: one record per webhook delivery (`WebhookDelivery`: every attempt, the
 * outcome, the next attempt's time) in a KV bucket keyed `<session_id>.<sequence>`. The
 * dispatcher writes it; this is the read side the API serves per session.
 */

import { createRacing } from "@capture/jetstream"
import { decodeUnknown, WebhookDelivery } from "@capture/protocol"
import type { Topology, TopologyOptions } from "@capture/session-actor"
import { type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream"
import { type KV, Kvm } from "@nats-io/kv"
import type { NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"

/** Bucket names for a deployment prefix: deliveries (the log) and lanes (per-session progress). */
export const webhookBucketNames = (prefix: string) =>
  ({
    deliveries: `${prefix}_webhook_deliveries`,
    lanes: `${prefix}_webhook_lanes`,
  }) as const

/** The key of a session's delivery of its event number `sequence`. */
export const deliveryKey = (sessionId: string, sequence: number): string => `${sessionId}.${sequence}`

// Session ids are `cap-` plus [A-Za-z0-9_-]: anything else (wildcards, dots) never names one.
const sessionKeyPattern = /^[A-Za-z0-9_-]{1,128}$/

const decodeDelivery = decodeUnknown(WebhookDelivery)

/** Creates (if missing) and opens one of the webhook buckets. Safe to run from many processes at once. */
export const openWebhookBucket = async (
  nc: NatsConnection,
  options: TopologyOptions,
  bucket: keyof ReturnType<typeof webhookBucketNames>,
): Promise<KV> =>
  createRacing(() =>
    new Kvm(jetstream(nc)).create(webhookBucketNames(options.prefix)[bucket], {
      replicas: options.replicas,
      history: 1,
    }),
  )

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
    const entry = await this.bucket.get(key)
    if (entry === null || entry.operation !== "PUT") return undefined
    let decoded: Result.Result<WebhookDelivery, unknown>
    try {
      decoded = decodeDelivery(entry.json())
    } catch (error) {
      decoded = Result.fail(error)
    }
    // A record this version cannot read (written by a newer one) is left out rather than failing the list.
    return Result.isSuccess(decoded) ? decoded.success : undefined
  }
}
