/**
 * Where alert webhook deliveries are kept: one `AlertDelivery` per fired alert and result in the
 * KV bucket `<prefix>_alert_deliveries`, key `<session_id>.<alert_id>.<scene>`, so a session's
 * alert deliveries are found by key prefix. `AlertDispatcher` writes them; `AlertDeliveryLog` is
 * the read side `GET /capture/session/:session_id/webhooks` serves.
 *
 * Records written before 7749f0a are keyed `<alert_id>.<scene>` and name no session, rtstream,
 * index or event (`LegacyAlertDelivery`): both read them where no record of the new layout exists,
 * completed from the alert they belong to, so an upgrade neither sends a delivered alert again nor
 * restarts a retry schedule, nor drops them from the list. They are not rewritten in place: the
 * next attempt writes the new key.
 */
import { createRacing } from "@capture/jetstream"
import { AlertDelivery, decodeUnknown, LegacyAlertDelivery } from "@capture/protocol"
import type { TopologyOptions } from "@capture/session-actor"
import { type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream"
import { type KV, type KvEntry, Kvm } from "@nats-io/kv"
import type { NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import { defaultWebhookRetentionMs } from "../webhooks/WebhookBuckets.js"

/** The bucket of alert deliveries for a deployment prefix. */
export const alertDeliveriesBucket = (prefix: string): string => `${prefix}_alert_deliveries`

/** The key of the delivery of `alertId` fired by result `scene` of one of the session's rtstreams. */
export const alertDeliveryKey = (sessionId: string, alertId: string, scene: number): string =>
  `${sessionId}.${alertId}.${scene}`

/** The key of the same delivery in the layout before 7749f0a: `<alert_id>.<scene>`. */
export const legacyAlertDeliveryKey = (alertId: string, scene: number): string => `${alertId}.${scene}`

/** Who an alert's deliveries belong to: what a legacy record leaves out. */
export interface AlertOwner {
  readonly alert_id: AlertDelivery["alert_id"]
  readonly event_id: AlertDelivery["event_id"]
  readonly session_id: AlertDelivery["session_id"]
  readonly rtstream_id: AlertDelivery["rtstream_id"]
  readonly index_id: AlertDelivery["index_id"]
}

/** Creates (if missing) and opens the alert-deliveries bucket. Safe from many processes at once. */
export const openAlertDeliveries = (
  nc: NatsConnection,
  topology: Pick<TopologyOptions, "prefix" | "replicas">,
): Promise<KV> =>
  createRacing(() =>
    new Kvm(jetstream(nc)).create(alertDeliveriesBucket(topology.prefix), {
      replicas: topology.replicas,
      history: 1,
    }),
  )

/** An alert-deliveries entry as read: absent, a record, or one this version cannot read. */
export type AlertDeliveryRead =
  | { readonly _tag: "Absent" }
  | { readonly _tag: "Readable"; readonly record: AlertDelivery }
  | { readonly _tag: "Unreadable"; readonly reason: string }

const decodeAlertDelivery = decodeUnknown(AlertDelivery)

/** Decodes an alert-deliveries entry with the protocol's schema (null: never written). */
export const readAlertDeliveryEntry = (entry: KvEntry | null): AlertDeliveryRead => {
  if (entry === null || entry.operation !== "PUT") return { _tag: "Absent" }
  let decoded: Result.Result<AlertDelivery, unknown>
  try {
    decoded = decodeAlertDelivery(entry.json())
  } catch (error) {
    decoded = Result.fail(error)
  }
  return Result.isSuccess(decoded)
    ? { _tag: "Readable", record: decoded.success }
    : {
        _tag: "Unreadable",
        reason: decoded.failure instanceof Error ? decoded.failure.message : String(decoded.failure),
      }
}

/**
 * Creates (if missing) and opens the alerts' retry schedule (`<prefix>_alert_retries`, key: the
 * stream sequence of a result waiting for a retry; `ParkedRetries`), its records kept a week
 * after their last write.
 */
export const openAlertRetries = (
  nc: NatsConnection,
  topology: Pick<TopologyOptions, "prefix" | "replicas">,
): Promise<KV> =>
  createRacing(() =>
    new Kvm(jetstream(nc)).create(`${topology.prefix}_alert_retries`, {
      replicas: topology.replicas,
      history: 1,
      ttl: defaultWebhookRetentionMs,
    }),
  )

const decodeLegacyAlertDelivery = decodeUnknown(LegacyAlertDelivery)

/**
 * Decodes an entry of the layout before 7749f0a, completed from `owner`; one of another alert is
 * unreadable (a key names its alert, so only a corrupt record is).
 */
export const readLegacyAlertDeliveryEntry = (entry: KvEntry | null, owner: AlertOwner): AlertDeliveryRead => {
  if (entry === null || entry.operation !== "PUT") return { _tag: "Absent" }
  let decoded: Result.Result<LegacyAlertDelivery, unknown>
  try {
    decoded = decodeLegacyAlertDelivery(entry.json())
  } catch (error) {
    decoded = Result.fail(error)
  }
  if (Result.isFailure(decoded)) {
    return {
      _tag: "Unreadable",
      reason: decoded.failure instanceof Error ? decoded.failure.message : String(decoded.failure),
    }
  }
  const legacy = decoded.success
  if (legacy.alert_id !== owner.alert_id)
    return { _tag: "Unreadable", reason: `it names alert ${legacy.alert_id}` }
  return {
    _tag: "Readable",
    record: {
      alert_id: owner.alert_id,
      event_id: owner.event_id,
      session_id: owner.session_id,
      rtstream_id: owner.rtstream_id,
      index_id: owner.index_id,
      scene: legacy.scene,
      url: legacy.url,
      status: legacy.status,
      attempts: legacy.attempts,
      next_attempt_at: legacy.next_attempt_at,
    },
  }
}

// Session ids are `cap-` plus [A-Za-z0-9_-]: anything else (wildcards, dots) never names one.
const sessionKeyPattern = /^[A-Za-z0-9_-]{1,128}$/

export class AlertDeliveryLog {
  private constructor(
    private readonly bucket: KV,
    private readonly jsm: JetStreamManager,
    private readonly bucketName: string,
  ) {}

  static async open(
    nc: NatsConnection,
    topology: Pick<TopologyOptions, "prefix" | "replicas">,
  ): Promise<AlertDeliveryLog> {
    const [bucket, jsm] = await Promise.all([openAlertDeliveries(nc, topology), jetstreamManager(nc)])
    return new AlertDeliveryLog(bucket, jsm, alertDeliveriesBucket(topology.prefix))
  }

  /**
   * A session's alert deliveries by rtstream, index, scene and alert (empty for an unknown
   * session); with the session's alerts (`alerts`), also those recorded before 7749f0a.
   */
  async list(
    sessionId: string,
    alerts: ReadonlyArray<AlertOwner> = [],
  ): Promise<ReadonlyArray<AlertDelivery>> {
    if (!sessionKeyPattern.test(sessionId)) return []
    const current = await this.read(`${sessionId}.>`, (entry) => readAlertDeliveryEntry(entry))
    const recorded = new Set(current.map((record) => `${record.alert_id}.${record.scene}`))
    const legacy = (
      await Promise.all(
        alerts
          .filter((owner) => sessionKeyPattern.test(owner.alert_id))
          .map((owner) =>
            this.read(`${owner.alert_id}.*`, (entry) => readLegacyAlertDeliveryEntry(entry, owner)),
          ),
      )
    )
      .flat()
      // Written again in the new layout since: that one is current.
      .filter((record) => !recorded.has(`${record.alert_id}.${record.scene}`))
    return [...current, ...legacy].sort(
      (a, b) =>
        a.rtstream_id.localeCompare(b.rtstream_id) ||
        a.index_id.localeCompare(b.index_id) ||
        a.scene - b.scene ||
        a.alert_id.localeCompare(b.alert_id),
    )
  }

  /** The records under the keys `filter` matches that `readEntry` can read. */
  private async read(
    filter: string,
    readEntry: (entry: KvEntry | null) => AlertDeliveryRead,
  ): Promise<ReadonlyArray<AlertDelivery>> {
    // The stream's subject list, as `DeliveryLog` does: no consumer, which a rewritten key can stall.
    const subjectPrefix = `$KV.${this.bucketName}.`
    const info = await this.jsm.streams.info(`KV_${this.bucketName}`, {
      subjects_filter: `${subjectPrefix}${filter}`,
    })
    const keys = Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(subjectPrefix.length))
    const reads = await Promise.all(keys.map(async (key) => readEntry(await this.bucket.get(key))))
    // A record this version cannot read (written by a newer one) is left out rather than failing the list.
    return reads.flatMap((read) => (read._tag === "Readable" ? [read.record] : []))
  }
}
