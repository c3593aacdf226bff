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
import { createRacing, isRevisionConflict } from "@capture/jetstream"
import { type CaptureError, captureError } from "@capture/protocol"
import { jetstream } from "@nats-io/jetstream"
import { type KV, Kvm } from "@nats-io/kv"
import type { NatsConnection } from "@nats-io/transport-node"
import type { GatewayLimits } from "../Limits.js"

const encoder = new TextEncoder()
const decoder = new TextDecoder()
/** Usage values remembered at once; the oldest is forgotten first (read again when needed). */
const KNOWN_LIMIT = 10_000
/** Keys added to the bucket at once by a flush. */
const FLUSH_PARALLELISM = 32

export class StorageQuota {
  /** Stored bytes per key as last read or written, and when. */
  private readonly known = new Map<string, { readonly bytes: number; readonly at: number }>()
  /** Bytes stored here and not yet added to the bucket. */
  private readonly pending = new Map<string, number>()
  private readonly timer: NodeJS.Timeout
  private flushing: Promise<void> = Promise.resolve()

  private constructor(
    private readonly kv: KV,
    private readonly limits: Pick<GatewayLimits, "sessionQuotaBytes" | "accountQuotaBytes">,
    private readonly flushMs: number,
    private readonly log: (message: string) => void,
  ) {
    this.timer = setInterval(() => void this.flush(), flushMs)
    this.timer.unref()
  }

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
    return new StorageQuota(kv, options.limits, options.flushMs ?? 1_000, options.log ?? (() => {}))
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
    for (const { key, quota, of } of checks) {
      const used = (await this.stored(key)) + (this.pending.get(key) ?? 0)
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
    for (const key of [`session.${sessionId}`, `account.${accountId}`]) {
      this.pending.set(key, (this.pending.get(key) ?? 0) + bytes)
    }
  }

  /** Adds what is pending to the bucket, now. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      const batch = [...this.pending]
      for (let i = 0; i < batch.length; i += FLUSH_PARALLELISM) {
        await Promise.all(
          batch.slice(i, i + FLUSH_PARALLELISM).map(([key, bytes]) => this.flushKey(key, bytes)),
        )
      }
    })
    return this.flushing
  }

  private async flushKey(key: string, bytes: number): Promise<void> {
    try {
      const total = await this.add(key, bytes)
      const left = (this.pending.get(key) ?? 0) - bytes
      if (left === 0) this.pending.delete(key)
      else this.pending.set(key, left)
      this.remember(key, total)
    } catch (error) {
      // Kept pending: the next flush tries again.
      this.log(`usage: cannot count ${key}: ${error instanceof Error ? error.message : String(error)}`)
    }
  }

  /** Stops the interval and flushes what is pending. */
  async stop(): Promise<void> {
    clearInterval(this.timer)
    await this.flush()
  }

  private async stored(key: string): Promise<number> {
    const known = this.known.get(key)
    if (known !== undefined && Date.now() - known.at < this.flushMs) return known.bytes
    const entry = await this.kv.get(key)
    const bytes = entry === null || entry.operation !== "PUT" ? 0 : Number(decoder.decode(entry.value))
    this.remember(key, bytes)
    return bytes
  }

  private remember(key: string, bytes: number): void {
    this.known.delete(key)
    this.known.set(key, { bytes, at: Date.now() })
    if (this.known.size > KNOWN_LIMIT) {
      const oldest = this.known.keys().next().value
      if (oldest !== undefined) this.known.delete(oldest)
    }
  }

  /** Adds `bytes` to a key with compare-and-set; returns the new total. */
  private async add(key: string, bytes: number): Promise<number> {
    for (;;) {
      const entry = await this.kv.get(key)
      const current = entry === null || entry.operation !== "PUT" ? 0 : Number(decoder.decode(entry.value))
      const total = current + bytes
      try {
        if (entry === null) await this.kv.create(key, encoder.encode(String(total)))
        else await this.kv.update(key, encoder.encode(String(total)), entry.revision)
        return total
      } catch (error) {
        // Another gateway added first: read again.
        if (!isRevisionConflict(error)) throw error
      }
    }
  }
}
