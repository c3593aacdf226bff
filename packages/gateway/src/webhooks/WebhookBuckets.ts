/**
 * Where webhook delivery keeps what must survive a crash: two KV buckets per deployment, lanes
 * (`<prefix>_webhook_lanes`, one per session) and deliveries (`<prefix>_webhook_deliveries`, one
 * per delivered event, key `<session_id>.<sequence>`).
 */
import { createRacing } from "@capture/jetstream"
import type { TopologyOptions } from "@capture/session-actor"
import { jetstream } from "@nats-io/jetstream"
import { type KV, Kvm } from "@nats-io/kv"
import type { NatsConnection } from "@nats-io/transport-node"

/** Bucket names for a deployment prefix: deliveries (the log) and lanes (per-session progress). */
export const webhookBucketNames = (prefix: string) =>
  ({
    deliveries: `${prefix}_webhook_deliveries`,
    lanes: `${prefix}_webhook_lanes`,
  }) as const

/** The key of a session's delivery of its event number `sequence`. */
export const deliveryKey = (sessionId: string, sequence: number): string => `${sessionId}.${sequence}`

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
