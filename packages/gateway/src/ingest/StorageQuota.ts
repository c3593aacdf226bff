/**
 * Storage quotas: the media bytes each session and each account has stored, counted in a KV
 * bucket every gateway shares (`<prefix>_usage`, keys `session.<id>` and `account.<id>`), and
 * an upload refused with 402 `quota_exceeded` once it would go over.
 *
 * Counting is batched: a gateway adds what it stored to each key once per flush interval, with
 * compare-and-set, so the thousands of sessions of one account never race on its key per segment.
 * The price: a quota may be overshot by what all gateways store within about one interval (plus
 * the uploads in flight), and a gateway killed before a flush forgets up to one interval of bytes.
 */
import { createRacing, SharedCounters } from "@capture/jetstream"
import { type CaptureError, captureError } from "@capture/protocol"
import { jetstream } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import type { NatsConnection } from "@nats-io/transport-node"
import type { GatewayLimits } from "../Limits.js"

/** Usage values remembered at once; the oldest is forgotten first (read again when needed). */
const KNOWN_LIMIT = 10_000

export class StorageQuota {
  private constructor(
    private readonly usage: SharedCounters,
    private readonly limits: Pick<GatewayLimits, "sessionQuotaBytes" | "accountQuotaBytes">,
  ) {}

  static async open(
    nc: NatsConnection,
    options: {
      readonly prefix: string
      readonly replicas: number
      readonly limits: Pick<GatewayLimits, "sessionQuotaBytes" | "accountQuotaBytes">
      readonly flushMs?: number
      readonly log?: (message: string) => void
    },
  ): Promise<StorageQuota> {
    const kv = await createRacing(() =>
      new Kvm(jetstream(nc)).create(`${options.prefix}_usage`, { replicas: options.replicas, history: 1 }),
    )
    const log = options.log ?? (() => {})
    const usage = new SharedCounters(kv, {
      syncMs: options.flushMs ?? 1_000,
      knownLimit: KNOWN_LIMIT,
      // Kept pending on failure: the next flush tries again.
      log: (message) => log(`usage: ${message}`),
    })
    return new StorageQuota(usage, options.limits)
  }

  /** Why `incomingBytes` more for the session would go over a quota, if it would. */
  async admit(
    accountId: string,
    sessionId: string,
    incomingBytes: number,
  ): Promise<CaptureError | undefined> {
    const checks = [
      { key: `session.${sessionId}`, quota: this.limits.sessionQuotaBytes, of: "session" },
      { key: `account.${accountId}`, quota: this.limits.accountQuotaBytes, of: "account" },
    ]
    // Both read at once when stale (a session's first upload of the interval): one wait, not two.
    await Promise.all(
      checks.map(({ key }) => (this.usage.isFresh(key) ? undefined : this.usage.refresh(key))),
    )
    for (const { key, quota, of } of checks) {
      const used = this.usage.total(key)
      if (used + incomingBytes > quota) {
        return captureError(
          "quota_exceeded",
          `the ${of} has stored ${used} bytes of media; its quota is ${quota} bytes`,
        )
      }
    }
    return undefined
  }

  /** Counts `bytes` newly stored for the session (added to the bucket at the next flush). */
  record(accountId: string, sessionId: string, bytes: number): void {
    this.usage.count(`session.${sessionId}`, bytes)
    this.usage.count(`account.${accountId}`, bytes)
  }

  /** Adds what is pending to the bucket, now. */
  flush(): Promise<void> {
    return this.usage.sync()
  }

  /** Stops the interval and flushes what is pending. */
  stop(): Promise<void> {
    return this.usage.stop()
  }
}
