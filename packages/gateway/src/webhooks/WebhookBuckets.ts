/**
 * Where webhook delivery keeps what must survive a crash: three KV buckets per deployment, lanes
 * (`<prefix>_webhook_lanes`, one per session), deliveries (`<prefix>_webhook_deliveries`, one per
 * delivered event, key `<session_id>.<sequence>`) and the retry schedule
 * (`<prefix>_webhook_retries`, one per parked lane). Every record expires a retention period
 * after it was last written (the buckets' `max_age`), so nothing is kept forever.
 */
import { createRacing } from "@capture/jetstream"
import type { TopologyOptions } from "@capture/session-actor"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { type KV, Kvm } from "@nats-io/kv"
import type { NatsConnection } from "@nats-io/transport-node"

/** Bucket names for a deployment prefix: deliveries (the log), lanes (per-session progress), retries (the schedule). */
export const webhookBucketNames = (prefix: string) =>
  ({
    deliveries: `${prefix}_webhook_deliveries`,
    lanes: `${prefix}_webhook_lanes`,
    retries: `${prefix}_webhook_retries`,
  }) as const

/** How long a lane, delivery record or retry record is kept after its last write: 7 days. */
export const defaultWebhookRetentionMs = 7 * 86_400_000

/** The key of a session's delivery of its event number `sequence`. */
export const deliveryKey = (sessionId: string, sequence: number): string => `${sessionId}.${sequence}`

/**
 * Creates (if missing) and opens one of the webhook buckets, its records kept `retentionMs` after
 * their last write (default 7 days). Given a retention, a bucket made with another one (an older
 * version's, which kept records forever) is given this one; a reader passes none and changes
 * nothing. Safe to run from many processes at once.
 */
export const openWebhookBucket = async (
  nc: NatsConnection,
  options: TopologyOptions,
  bucket: keyof ReturnType<typeof webhookBucketNames>,
  retentionMs?: number,
): Promise<KV> => {
  const name = webhookBucketNames(options.prefix)[bucket]
  const kv = await createRacing(() =>
    new Kvm(jetstream(nc)).create(name, {
      replicas: options.replicas,
      history: 1,
      ttl: retentionMs ?? defaultWebhookRetentionMs,
    }),
  )
  if (retentionMs === undefined) return kv
  const jsm = await jetstreamManager(nc)
  const info = await jsm.streams.info(`KV_${name}`)
  const maxAge = retentionMs * 1_000_000
  if (info.config.max_age !== maxAge) {
    await jsm.streams.update(`KV_${name}`, {
      ...info.config,
      max_age: maxAge,
      duplicate_window: Math.min(info.config.duplicate_window ?? maxAge, maxAge),
    })
  }
  return kv
}
