/**
 * Counters shared by every process through a KV bucket, counted without a round trip per
 * increment: each process adds locally (`count`) and adds its pending amounts to the bucket with
 * compare-and-set every sync interval (`sync`), learning the others' counts in the same step.
 * Readers see the total last read or written plus what is pending here: all processes together
 * may count up to about one sync interval beyond what the bucket shows.
 */
import type { KV } from "@nats-io/kv"
import { isRevisionConflict } from "./JetStreamErrors.js"

const encoder = new TextEncoder()
const decoder = new TextDecoder()
/** Keys added to the bucket at once by a sync. */
const SYNC_PARALLELISM = 32

export interface SharedCountersOptions {
  /** How often pending counts are added to the bucket; a total read within it is taken as fresh. */
  readonly syncMs: number
  /** Totals remembered at once; the oldest is forgotten first (read again when needed). */
  readonly knownLimit: number
  /** What a failed read or sync says, e.g. `usage: cannot count session.x: …`. */
  readonly log: (message: string) => void
  /** A key whose sync failed is dropped when this says so (e.g. a past rate window); kept otherwise. */
  readonly dropOnFailure?: (key: string) => boolean
}

export class SharedCounters {
  /** The shared total per key as last read or written, and when. */
  private readonly known = new Map<string, { readonly total: number; readonly at: number }>()
  /** Counted here and not yet added to the bucket. */
  private readonly pending = new Map<string, number>()
  private readonly reading = new Map<string, Promise<void>>()
  private readonly timer: NodeJS.Timeout
  private syncing: Promise<void> = Promise.resolve()

  constructor(
    private readonly kv: KV,
    private readonly options: SharedCountersOptions,
  ) {
    this.timer = setInterval(() => void this.sync(), options.syncMs)
    this.timer.unref()
  }

  /** The total as known here: the last shared total read or written plus what is pending. */
  total(key: string): number {
    return (this.known.get(key)?.total ?? 0) + (this.pending.get(key) ?? 0)
  }

  /** Whether the shared total of `key` was read or written within the last sync interval. */
  isFresh(key: string, now = Date.now()): boolean {
    const known = this.known.get(key)
    return known !== undefined && now - known.at < this.options.syncMs
  }

  /** Whether `key` was read before and has counts pending here (the next sync refreshes it). */
  isSyncing(key: string): boolean {
    return this.known.has(key) && this.pending.has(key)
  }

  /** Reads the shared total of `key` from the bucket (one read in flight per key). */
  refresh(key: string): Promise<void> {
    const inFlight = this.reading.get(key)
    if (inFlight !== undefined) return inFlight
    const read = this.kv
      .get(key)
      .then((entry) =>
        this.remember(key, entry === null || entry.operation !== "PUT" ? 0 : countOf(entry.value)),
      )
      .catch((error: unknown) => this.options.log(`cannot read ${key}: ${messageOf(error)}`))
      .finally(() => this.reading.delete(key))
    this.reading.set(key, read)
    return read
  }

  /** Counts `amount` for `key` here; it reaches the bucket at the next sync. */
  count(key: string, amount: number): void {
    this.pending.set(key, (this.pending.get(key) ?? 0) + amount)
  }

  /** Adds what is pending here to the bucket, now. */
  sync(): Promise<void> {
    this.syncing = this.syncing.then(async () => {
      const batch = [...this.pending]
      for (let i = 0; i < batch.length; i += SYNC_PARALLELISM) {
        await Promise.all(
          batch.slice(i, i + SYNC_PARALLELISM).map(([key, amount]) => this.syncKey(key, amount)),
        )
      }
    })
    return this.syncing
  }

  /** Stops the interval after adding what is pending. */
  async stop(): Promise<void> {
    clearInterval(this.timer)
    await this.sync()
  }

  private async syncKey(key: string, amount: number): Promise<void> {
    try {
      const total = await this.add(key, amount)
      const left = (this.pending.get(key) ?? 0) - amount
      if (left === 0) this.pending.delete(key)
      else this.pending.set(key, left)
      this.remember(key, total)
    } catch (error) {
      this.options.log(`cannot count ${key}: ${messageOf(error)}`)
      if (this.options.dropOnFailure?.(key) === true) this.pending.delete(key)
    }
  }

  private remember(key: string, total: number): void {
    this.known.delete(key)
    this.known.set(key, { total, at: Date.now() })
    if (this.known.size > this.options.knownLimit) {
      const oldest = this.known.keys().next().value
      if (oldest !== undefined) this.known.delete(oldest)
    }
  }

  /** Adds `amount` to a key with compare-and-set; returns the new total. */
  private async add(key: string, amount: number): Promise<number> {
    for (;;) {
      const entry = await this.kv.get(key)
      const current = entry === null || entry.operation !== "PUT" ? 0 : countOf(entry.value)
      const total = current + amount
      try {
        if (entry === null) await this.kv.create(key, encoder.encode(String(total)))
        else await this.kv.update(key, encoder.encode(String(total)), entry.revision)
        return total
      } catch (error) {
        // Another process added first: read again.
        if (!isRevisionConflict(error)) throw error
      }
    }
  }
}

const countOf = (value: Uint8Array): number => {
  const count = Number(decoder.decode(value))
  return Number.isFinite(count) ? count : 0
}

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))
