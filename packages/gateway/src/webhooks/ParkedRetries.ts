/**
 * The retry schedule: the lanes whose head waits for its next attempt, one KV record per session
 * (bucket `<prefix>_webhook_retries`, key `<session_id>`, `{due_at}` in ms since epoch). A failed
 * attempt is acknowledged on the shared consumer and parked here, so waiting never holds one of
 * the consumer's `max_ack_pending` slots and a dead endpoint delays no other session's webhooks.
 *
 * Every gateway watches the bucket (a KV watch: no acknowledgements, nothing held) and keeps a
 * timer per record. When one comes due, the gateways race to claim it by compare-and-set (the
 * record's `due_at` moved a lease ahead); the winner runs the lane, and if it dies the lease runs
 * out and another claims it. The runner reschedules, renews or releases the record, each by
 * compare-and-set on the revision it holds. The alert dispatcher keeps a schedule of its own the
 * same way (`<prefix>_alert_retries`, keyed by the waiting result's stream sequence).
 */
import { gauge, isRevisionConflict } from "@capture/jetstream"
import { decodeUnknown } from "@capture/protocol"
import type { KV, KvEntry } from "@nats-io/kv"
import { Result, Schema } from "effect"

/** A parked lane's record: when it is to be run (its head's next attempt, or a runner's lease end). */
const ParkedRetry = Schema.Struct({ due_at: Schema.Finite })

const decodeParked = decodeUnknown(ParkedRetry)

const parkedGauge = gauge(
  "capture_parked_retries",
  "Records in a retry schedule bucket (<prefix>_webhook_retries: sessions whose webhook delivery waits for its next attempt; <prefix>_alert_retries: alert results), as this process's watch of it sees them",
)

/** Runs the lane of a session whose record came due; `revision` is the record as claimed. */
export type RunParked = (sessionId: string, revision: number) => Promise<void>

export interface ParkedRetriesOptions {
  /** What the log lines start with (`webhooks`, `alerts`). */
  readonly name?: string
  /** The bucket's name: the `bucket` label of the `capture_parked_retries` gauge. */
  readonly bucketName: string
  /** How long a claim holds before another gateway may take the lane over. */
  readonly leaseMs: number
  /** Lanes this process runs at once. */
  readonly concurrency: number
  readonly log: (message: string) => void
}

export class ParkedRetries {
  private readonly timers = new Map<string, NodeJS.Timeout>()
  private readonly running = new Set<Promise<void>>()
  private readonly queue: Array<{ readonly sessionId: string; readonly revision: number }> = []
  private readonly queued = new Set<string>()
  /** The keys with a record in the bucket now (parked, or claimed and being run). */
  private readonly parked = new Set<string>()
  private watcher: { stop(): void } | undefined
  private stopped = false
  private readonly name: string

  constructor(
    private readonly bucket: KV,
    private readonly options: ParkedRetriesOptions,
  ) {
    this.name = options.name ?? "webhooks"
  }

  /** Parks a session's lane until `dueAt` (ms since epoch), whatever was there. */
  async park(sessionId: string, dueAt: number): Promise<void> {
    await this.bucket.put(sessionId, JSON.stringify({ due_at: Math.round(dueAt) }))
  }

  /** Moves a claimed record to `dueAt`; the new revision, or undefined when another process has it now. */
  async reschedule(sessionId: string, revision: number, dueAt: number): Promise<number | undefined> {
    try {
      return await this.bucket.update(sessionId, JSON.stringify({ due_at: Math.round(dueAt) }), revision)
    } catch (error) {
      if (!isRevisionConflict(error)) throw error
      return undefined
    }
  }

  /** Claims a due record for a lease; the new revision, or undefined when another process was first. */
  claim(sessionId: string, revision: number): Promise<number | undefined> {
    return this.reschedule(sessionId, revision, Date.now() + this.options.leaseMs)
  }

  /** Removes a record this process holds at `revision` (left alone if someone wrote it since). */
  async release(sessionId: string, revision: number): Promise<void> {
    try {
      await this.bucket.delete(sessionId, { previousSeq: revision })
    } catch (error) {
      if (!isRevisionConflict(error)) throw error
    }
  }

  /** Starts watching the schedule and running each lane that comes due with `run`. */
  async start(run: RunParked): Promise<void> {
    const watcher = await this.bucket.watch({ key: ">" })
    this.watcher = watcher
    // A new watch replays every record: what was seen before may have been removed meanwhile.
    this.parked.clear()
    this.reportParked()
    void (async () => {
      for await (const entry of watcher) this.track(entry, run)
    })()
      .catch((error: unknown) => {
        if (!this.stopped) this.options.log(`${this.name}: retry schedule watch failed: ${String(error)}`)
      })
      .finally(() => {
        if (this.stopped) return
        this.options.log(`${this.name}: retry schedule watch ended; watching again`)
        this.watchAgain(run)
      })
  }

  /** Watches again after a moment (NATS may be away): a new watch replays every record. */
  private watchAgain(run: RunParked): void {
    const timer = setTimeout(() => {
      if (this.stopped) return
      this.start(run).catch(() => this.watchAgain(run))
    }, 1_000)
    timer.unref()
  }

  /** Stops watching and waits for the lanes being run (their callers abort their POSTs). */
  async stop(): Promise<void> {
    this.stopped = true
    this.watcher?.stop()
    for (const timer of this.timers.values()) clearTimeout(timer)
    this.timers.clear()
    this.queue.length = 0
    this.parked.clear()
    this.reportParked()
    await Promise.allSettled([...this.running])
  }

  /** Records parked now (for health and tests). */
  get size(): number {
    return this.timers.size
  }

  /** Records in the bucket now, waiting or being run (the `capture_parked_retries` gauge). */
  get parkedCount(): number {
    return this.parked.size
  }

  private reportParked(): void {
    parkedGauge.set(this.parked.size, { bucket: this.options.bucketName })
  }

  private track(entry: KvEntry, run: RunParked): void {
    const sessionId = entry.key
    const previous = this.timers.get(sessionId)
    if (previous !== undefined) clearTimeout(previous)
    this.timers.delete(sessionId)
    if (this.stopped) return
    if (entry.operation === "PUT") this.parked.add(sessionId)
    else this.parked.delete(sessionId)
    this.reportParked()
    if (entry.operation !== "PUT") return
    let decoded: Result.Result<typeof ParkedRetry.Type, unknown>
    try {
      decoded = decodeParked(entry.json())
    } catch (error) {
      decoded = Result.fail(error)
    }
    if (Result.isFailure(decoded)) {
      this.options.log(`${this.name}: retry record ${sessionId} is unreadable; left as it is`)
      return
    }
    // A little spread, so the gateways do not all race for the same record at the same instant.
    const wait = Math.max(0, decoded.success.due_at - Date.now()) + Math.random() * 50
    const timer = setTimeout(
      () => {
        this.timers.delete(sessionId)
        this.enqueue(sessionId, entry.revision, run)
      },
      Math.min(wait, 2 ** 31 - 1),
    )
    timer.unref()
    this.timers.set(sessionId, timer)
  }

  private enqueue(sessionId: string, revision: number, run: RunParked): void {
    if (this.stopped || this.queued.has(sessionId)) return
    this.queued.add(sessionId)
    this.queue.push({ sessionId, revision })
    this.pump(run)
  }

  private pump(run: RunParked): void {
    while (this.running.size < this.options.concurrency && !this.stopped) {
      const next = this.queue.shift()
      if (next === undefined) return
      const task = (async () => {
        const claimed = await this.claim(next.sessionId, next.revision)
        if (claimed !== undefined) await run(next.sessionId, claimed)
      })()
        .catch((error: unknown) => {
          // The claim runs out and the lane is run again then.
          this.options.log(
            `${this.name}: running the parked retry ${next.sessionId} failed: ${String(error)}`,
          )
        })
        .finally(() => {
          this.queued.delete(next.sessionId)
          this.running.delete(task)
          this.pump(run)
        })
      this.running.add(task)
    }
  }
}
