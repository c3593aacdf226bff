/**
 * Durable timers: a session never started expires (`failed`, `expired`), one stuck in `starting`
 * fails, one stuck in `stopping` is forced to `stopped`. Deadlines live in a KV bucket (written by the host right after the append, and
 * reconciled from the log by the projector, so a crash between the two loses nothing). Every
 * process watches the bucket and fires what is due; firing twice is harmless because the command
 * id is derived from the deadline and a stale timer is ignored by the session. An entry that does
 * not decode as a `TimerEntry` is logged and skipped (and replaced when the session is reconciled).
 */

import { parentFromTraceparent, type SpanParent } from "@capture/jetstream"
import {
  type CommandId,
  decodeJson,
  IsoTimestamp,
  type SessionCommand,
  SessionId,
  TimerName,
} from "@capture/protocol"
import type { KvEntry, KvWatchEntry } from "@nats-io/kv"
import { Result, Schema } from "effect"
import type { SessionState } from "./SessionMachine.js"
import type { Topology } from "./Topology.js"

/** A timer as stored in the timer bucket (key `<session_id>.<timer>`). */
export const TimerEntry = Schema.Struct({
  session_id: SessionId,
  timer: TimerName,
  /** When the timer fires. */
  deadline: IsoTimestamp,
  /** The W3C trace context of the command that armed it (tracing on): its firing continues that trace. */
  traceparent: Schema.optionalKey(Schema.String),
})
export type TimerEntry = typeof TimerEntry.Type

const decodeTimer = decodeJson(TimerEntry)

/** A stored entry's timer, or undefined (logged) when it does not decode. */
const readTimer = (entry: KvEntry, log: (message: string) => void): TimerEntry | undefined => {
  const timer = decodeTimer(entry.value)
  if (Result.isSuccess(timer)) return timer.success
  log(`timers: entry ${entry.key} is not a timer (${timer.failure.message}); skipped`)
  return undefined
}

/** The timers a session's state implies (the reactor's `silence` timer is its own business). */
const STATE_TIMERS: ReadonlyArray<TimerName> = ["expire", "start", "stop", "late_media"]

const keyOf = (sessionId: string, timer: TimerName) => `${sessionId}.${timer}`

/** The timers a state should have armed. */
export const timersFor = (state: SessionState): ReadonlyArray<TimerEntry> => {
  const sessionId = state.context.session_id
  if (sessionId === null) return []
  if (state.value === "created" && state.context.expire_deadline !== null) {
    return [{ session_id: sessionId, timer: "expire", deadline: state.context.expire_deadline }]
  }
  if (state.value === "starting" && state.context.start_deadline !== null) {
    return [{ session_id: sessionId, timer: "start", deadline: state.context.start_deadline }]
  }
  if (state.value === "stopping" && state.context.stop_deadline !== null) {
    return [{ session_id: sessionId, timer: "stop", deadline: state.context.stop_deadline }]
  }
  if (state.value === "stopped" && state.context.late_media_until !== null) {
    return [{ session_id: sessionId, timer: "late_media", deadline: state.context.late_media_until }]
  }
  return []
}

/** The command a due timer sends. */
export const fireCommand = (entry: TimerEntry): SessionCommand => ({
  type: "FireTimer",
  command_id: `timer:${entry.session_id}:${entry.timer}:${entry.deadline}` as CommandId,
  session_id: entry.session_id,
  timer: entry.timer,
  deadline: entry.deadline,
})

/** A watched entry that does not decode: removed by the next reconcile, which must read it. */
const UNREADABLE = Symbol("unreadable")

/**
 * The bucket as this process's timer wheel has watched it: each key's deadline, and, once the
 * watch has passed the bucket's contents at its start, that a key it never saw is absent. A
 * reconcile skips reading a timer the state does not want where the view says it is absent
 * (most of them: a state wants one timer at most). A timer the state wants is always read: a
 * view behind a delete must not leave it unarmed. A put the view has not seen yet is at worst a
 * stale timer left in place, which fires and changes nothing.
 */
class WatchedTimers {
  /** Deadlines of the keys present; `unreadable` for an entry that does not decode (a reconcile reads it). */
  private readonly deadlines = new Map<string, string | typeof UNREADABLE>()
  /** The bucket's last revision when the watch started; undefined once the watch has passed it. */
  private pendingUntil: number | undefined

  constructor(initialRevision: number) {
    this.pendingUntil = initialRevision > 0 ? initialRevision : undefined
  }

  note(entry: KvWatchEntry, deadline: string | null | typeof UNREADABLE): void {
    if (deadline === null) this.deadlines.delete(entry.key)
    else this.deadlines.set(entry.key, deadline)
    if (this.pendingUntil !== undefined && entry.revision >= this.pendingUntil) this.pendingUntil = undefined
  }

  /** A key's deadline as watched (null: absent), or undefined while that is not known. */
  deadlineOf(key: string): string | null | undefined {
    const deadline = this.deadlines.get(key)
    if (deadline === UNREADABLE) return undefined
    if (deadline !== undefined) return deadline
    return this.pendingUntil === undefined ? null : undefined
  }
}

/** Reads and writes the timer bucket. */
export class TimerStore {
  private watched: WatchedTimers | undefined

  constructor(
    private readonly topology: Topology,
    private readonly log: (message: string) => void = () => {},
  ) {}

  /** Called by this process's wheel as its watch starts (at the bucket's last revision), or stops (undefined). */
  watchFrom(initialRevision: number | undefined): void {
    this.watched = initialRevision === undefined ? undefined : new WatchedTimers(initialRevision)
  }

  /** Called by the wheel for each entry its watch delivers: its deadline, null (deleted) or `unreadable`. */
  noteWatched(entry: KvWatchEntry, deadline: string | null | "unreadable"): void {
    this.watched?.note(entry, deadline === "unreadable" ? UNREADABLE : deadline)
  }

  async schedule(entry: TimerEntry): Promise<void> {
    await this.topology.timers.put(keyOf(entry.session_id, entry.timer), JSON.stringify(entry))
  }

  async cancel(sessionId: string, timer: TimerName): Promise<void> {
    await this.topology.timers.delete(keyOf(sessionId, timer))
  }

  /** Makes the bucket agree with a session's state: arm what it needs, cancel the rest. */
  async reconcile(state: SessionState): Promise<void> {
    const sessionId = state.context.session_id
    if (sessionId === null) return
    const wanted = timersFor(state)
    // One key per timer: all of them are looked at (and put right) at once.
    await Promise.all(
      STATE_TIMERS.map(async (timer) => {
        const entry = wanted.find((w) => w.timer === timer)
        // Not wanted and, as watched, not there: nothing to read.
        if (entry === undefined && this.watched?.deadlineOf(keyOf(sessionId, timer)) === null) return
        const current = await this.topology.timers.get(keyOf(sessionId, timer))
        const stored = current !== null && current.operation === "PUT" ? current : undefined
        const armed = stored === undefined ? undefined : readTimer(stored, this.log)
        if (entry !== undefined && armed?.deadline !== entry.deadline) await this.schedule(entry)
        // An unreadable entry is removed too: nothing would ever fire it.
        if (entry === undefined && stored !== undefined) await this.cancel(sessionId, timer)
      }),
    )
  }
}

/**
 * Watches the timer bucket and sends `FireTimer` for each due entry, with the span of the command
 * that armed it as `parent` (tracing on). `fire` must be idempotent; on failure the timer is
 * retried after `retryMs`.
 */
export class TimerWheel {
  private readonly pending = new Map<string, NodeJS.Timeout>()
  private watcher: Awaited<ReturnType<Topology["timers"]["watch"]>> | undefined

  constructor(
    private readonly topology: Topology,
    private readonly fire: (command: SessionCommand, parent: SpanParent | undefined) => Promise<void>,
    private readonly log: (message: string) => void = () => {},
    private readonly retryMs = 1_000,
    /** This process's timer store, told what the watch sees so its reconciles can skip reads. */
    private readonly store?: TimerStore,
  ) {}

  async start(): Promise<void> {
    const initialRevision = (await this.topology.timers.status()).streamInfo.state.last_seq
    this.watcher = await this.topology.timers.watch()
    this.store?.watchFrom(initialRevision)
    void this.loop(this.watcher)
  }

  async stop(): Promise<void> {
    this.store?.watchFrom(undefined)
    this.watcher?.stop()
    for (const handle of this.pending.values()) clearTimeout(handle)
    this.pending.clear()
  }

  /** How many timers this process is waiting on. */
  get size(): number {
    return this.pending.size
  }

  private async loop(watcher: AsyncIterable<KvWatchEntry>): Promise<void> {
    for await (const entry of watcher) {
      const existing = this.pending.get(entry.key)
      if (existing !== undefined) clearTimeout(existing)
      this.pending.delete(entry.key)
      const timer = entry.operation === "PUT" ? readTimer(entry, this.log) : undefined
      this.store?.noteWatched(
        entry,
        entry.operation !== "PUT" ? null : timer === undefined ? "unreadable" : timer.deadline,
      )
      if (timer !== undefined) this.arm(entry.key, timer, Date.parse(timer.deadline) - Date.now())
    }
  }

  private arm(key: string, timer: TimerEntry, delayMs: number): void {
    // setTimeout caps at ~24.8 days; longer timers re-arm on the way.
    const wait = Math.min(Math.max(0, delayMs), 2 ** 31 - 1)
    const handle = setTimeout(() => {
      const remaining = Date.parse(timer.deadline) - Date.now()
      if (remaining > 0) return this.arm(key, timer, remaining)
      this.fire(fireCommand(timer), parentFromTraceparent(timer.traceparent)).then(
        () => this.pending.delete(key),
        () => this.arm(key, timer, this.retryMs),
      )
    }, wait)
    handle.unref?.()
    this.pending.set(key, handle)
  }
}
