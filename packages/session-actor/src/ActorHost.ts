/**
 * The actor host: runs commands against session actors. For each command it loads the state
 * (cache, or snapshot + tail, or full replay), decides with the pure machine, appends the event
 * with optimistic concurrency, then runs the effects. Actors are not pinned to a process: any
 * number of hosts may handle the same session; a sequence conflict means another host appended
 * first, so this one catches up from the stream and decides again (bounded).
 */

import {
  counter,
  endSpan,
  histogram,
  LATENCY_BOUNDARIES,
  type SpanParent,
  secondsSince,
  startSpan,
  traceparentOf,
} from "@capture/jetstream"
import {
  type CaptureError,
  captureError,
  type SessionCommand,
  type SessionEvent,
  type SessionId,
} from "@capture/protocol"
import { Result, type Tracer } from "effect"
import { DEFAULT_EXPIRE_TIMEOUT_MS, type DecideOptions, decide, toEvent } from "./Decide.js"
import type { TimerStore } from "./DurableTimers.js"
import { type AppendAck, type EventStore, SequenceConflict } from "./EventStore.js"
import { applyEvent, foldEvent } from "./SessionFold.js"
import { initialState, type SessionEffect, type SessionState } from "./SessionMachine.js"
import type { SnapshotStore } from "./SnapshotStore.js"

/** Host settings. */
export interface ActorHostOptions extends DecideOptions {
  /** Write a snapshot every this many events. */
  readonly snapshotEvery: number
  /** How many times a command is re-decided after losing a race before it gives up. */
  readonly maxAttempts: number
  /** How many sessions' states to keep in memory. */
  readonly cacheSize: number
  /** The clock (a test can pass its own). */
  readonly now: () => Date
}

export const defaultActorHostOptions: ActorHostOptions = {
  startTimeoutMs: 60_000,
  stopTimeoutMs: 30_000,
  expireTimeoutMs: DEFAULT_EXPIRE_TIMEOUT_MS,
  snapshotEvery: 100,
  maxAttempts: 8,
  cacheSize: 10_000,
  now: () => new Date(),
}

/** A session's state with where it sits in the stream. */
export interface LoadedSession {
  readonly state: SessionState
  /** Stream sequence of the last event folded into `state` (0: none). */
  readonly streamSequence: number
  /** Command ids of the latest events seen, to recognise a retry whose first try did land. */
  readonly recentCommands: RecentCommands
}

/**
 * The last few command ids a session stored, in a fixed ring searched linearly: a retry comes
 * within a few commands of its first try, and a small array per cached session keeps the
 * host's live heap (and so its garbage collection) small.
 */
export class RecentCommands {
  private readonly ring: Array<string | undefined>
  private next = 0

  constructor(readonly capacity = 16) {
    this.ring = new Array(capacity)
  }

  add(commandId: string): this {
    this.ring[this.next] = commandId
    this.next = (this.next + 1) % this.capacity
    return this
  }

  has(commandId: string): boolean {
    return this.ring.includes(commandId)
  }
}

/** A cached session, with when it was last known to be the newest (`performance.now()`). */
interface CachedSession extends LoadedSession {
  readonly confirmedAt: number
}

/** A session loaded from `state` at `streamSequence`, with no command ids seen yet. */
const loadedFrom = (state: SessionState, streamSequence: number): LoadedSession => ({
  state,
  streamSequence,
  recentCommands: new RecentCommands(),
})

/** What a command did. */
export interface CommandOutcome {
  readonly state: SessionState
  /** The event this command stored, or null when it changed nothing (idempotent repeat). */
  readonly event: SessionEvent | null
  /** True when the command id had already been stored (a retried command). */
  readonly duplicate: boolean
}

const commands = counter(
  "capture_commands_total",
  "Session commands run by this process, by type and outcome (stored, unchanged, duplicate, refused, error)",
)
const commandSeconds = histogram(
  "capture_command_duration_seconds",
  "Time from a command's arrival at the actor host to its outcome, by type",
  LATENCY_BOUNDARIES,
)

const outcomeOf = (result: Result.Result<CommandOutcome, CaptureError>): string =>
  Result.isFailure(result)
    ? "refused"
    : result.success.event !== null
      ? "stored"
      : result.success.duplicate
        ? "duplicate"
        : "unchanged"

export class ActorHost {
  private readonly cache = new Map<string, CachedSession>()
  /** Sessions with a message this code cannot read, and where: states from before it are not cached. */
  private readonly unreadableAt = new Map<string, number>()
  private readonly inFlight = new Map<string, Promise<unknown>>()
  readonly options: ActorHostOptions

  constructor(
    private readonly events: EventStore,
    private readonly snapshots: SnapshotStore,
    private readonly timers: TimerStore | undefined,
    options: Partial<ActorHostOptions> = {},
  ) {
    this.options = { ...defaultActorHostOptions, ...options }
  }

  /**
   * Runs a command. Commands for one session are serialized within this host; across hosts the
   * event store's expected-sequence check keeps history linear. `parent` is the span of the work
   * that issued it (an HTTP request, a consumed message), which the command's trace continues.
   */
  execute(
    command: SessionCommand,
    parent?: SpanParent,
  ): Promise<Result.Result<CommandOutcome, CaptureError>> {
    return this.serialized(command.session_id, () => this.measured(command, parent))
  }

  /** The current state of a session, caught up with the stream. */
  async load(sessionId: SessionId | string): Promise<LoadedSession> {
    return this.serialized(sessionId, () => this.catchUp(sessionId))
  }

  /**
   * The session's state as this host holds it when that already covers the stream up to
   * `streamSequence`, else caught up with the stream like `load`. A projector that has seen an
   * event needs a state at least that new, not a lookup of the session's last event to prove it
   * is the newest (a newer event brings its own projection).
   */
  async loadCovering(sessionId: SessionId | string, streamSequence: number): Promise<LoadedSession> {
    const cached = this.cache.get(sessionId)
    return cached !== undefined && cached.streamSequence >= streamSequence ? cached : this.load(sessionId)
  }

  /**
   * The session as this host last knew it, loaded only when it knows nothing of it. Enough for
   * what never changes once stored (its account, end user and collection: who may act on it);
   * anything that moves (status, channels) wants `load`.
   */
  async loadKnown(sessionId: SessionId | string): Promise<LoadedSession> {
    return this.loadCovering(sessionId, 1)
  }

  /**
   * The session's state as this host knew it at most `maxAgeMs` ago (caught up with the stream,
   * or appended to by this host, since), else caught up like `load`. Loads of the session already
   * under way are joined rather than repeated, so uploads of a session's channels arriving
   * together cost one lookup. For a caller that may act on a state that old (it would have, had
   * its request come that much earlier) and judges again on `load` before refusing anything.
   */
  async loadRecent(sessionId: SessionId | string, maxAgeMs: number): Promise<LoadedSession> {
    const recent = () => {
      const cached = this.cache.get(sessionId)
      return cached !== undefined && performance.now() - cached.confirmedAt <= maxAgeMs ? cached : undefined
    }
    return recent() ?? this.serialized(sessionId, async () => recent() ?? this.catchUp(sessionId))
  }

  /** Folds an event this host learned about elsewhere (e.g. from a consumer) if it is the next one. */
  observe(event: SessionEvent, streamSequence: number): void {
    const cached = this.cache.get(event.session_id)
    if (cached === undefined || cached.state.context.sequence + 1 !== event.sequence) return
    this.remember(event.session_id, {
      state: foldEvent(cached.state, event),
      streamSequence,
      recentCommands: cached.recentCommands.add(event.command_id),
      confirmedAt: cached.confirmedAt,
    })
  }

  /**
   * Forgets one session's cached state: the next load reads its history again. With
   * `unreadableAt` (a message of the session this code cannot read), no state from before it is
   * cached again, so a load or command still under way cannot bring back a state that would let
   * later events fold past that message.
   */
  forget(sessionId: string, unreadableAt?: number): void {
    this.cache.delete(sessionId)
    if (unreadableAt !== undefined) {
      this.unreadableAt.set(sessionId, Math.max(unreadableAt, this.unreadableAt.get(sessionId) ?? 0))
    }
  }

  /** Forgets cached states (e.g. after the stream was rebuilt). */
  clear(): void {
    this.cache.clear()
    this.unreadableAt.clear()
  }

  /** Runs a command, counting it and timing it (and tracing it when tracing is on). */
  private async measured(
    command: SessionCommand,
    parent: SpanParent | undefined,
  ): Promise<Result.Result<CommandOutcome, CaptureError>> {
    const startedAt = performance.now()
    const span = startSpan(`command ${command.type}`, {
      parent,
      attributes: { "capture.session_id": command.session_id, "capture.command_id": command.command_id },
    })
    let outcome = "error"
    try {
      const result = await this.run(command, span)
      outcome = outcomeOf(result)
      span?.attribute("capture.outcome", outcome)
      endSpan(span)
      return result
    } catch (error) {
      endSpan(span, error)
      throw error
    } finally {
      commands.add(1, { type: command.type, outcome })
      commandSeconds.observe(secondsSince(startedAt), { type: command.type })
    }
  }

  private async run(
    command: SessionCommand,
    span: Tracer.Span | undefined,
  ): Promise<Result.Result<CommandOutcome, CaptureError>> {
    // A new session id has no history: skip the read, and let a conflict tell us otherwise.
    let loaded: LoadedSession =
      this.cache.get(command.session_id) ??
      (command.type === "CreateSession"
        ? loadedFrom(initialState, 0)
        : await this.catchUp(command.session_id))
    for (let attempt = 1; attempt <= this.options.maxAttempts; attempt++) {
      // A retry whose first try was stored (its reply lost): the same answer JetStream's dedupe gives.
      if (loaded.recentCommands.has(command.command_id)) {
        return Result.succeed({ state: loaded.state, event: null, duplicate: true })
      }
      const now = this.options.now()
      const decision = decide(loaded.state, command, now, this.options)
      if (Result.isFailure(decision)) {
        // A refusal judged on a stale cache may be wrong: judge it again on fresh state.
        const fresh = await this.catchUp(command.session_id)
        if (fresh.streamSequence === loaded.streamSequence) return Result.fail(decision.failure)
        loaded = fresh
        continue
      }
      const draft = decision.success
      if (draft === null) return Result.succeed({ state: loaded.state, event: null, duplicate: false })
      const event = toEvent(loaded.state, command, draft, now)
      const appendedAt = performance.now()
      let ack: AppendAck
      try {
        ack = await this.events.append(event, loaded.streamSequence, command.command_id, span)
      } catch (error) {
        if (!(error instanceof SequenceConflict)) throw error
        loaded = await this.catchUp(command.session_id)
        continue
      }
      if (ack.duplicate) {
        const fresh = await this.catchUp(command.session_id)
        return Result.succeed({ state: fresh.state, event: null, duplicate: true })
      }
      // Folded after the append, not before: nothing but the event waits on the ack, so a
      // thousand commands in flight hold a thousand events, not a thousand states.
      const [next, effects] = applyEvent(loaded.state, event)
      // The append was accepted as the next event: the newest state as of its sending.
      this.remember(command.session_id, {
        state: next,
        streamSequence: ack.streamSequence,
        recentCommands: loaded.recentCommands.add(command.command_id),
        confirmedAt: appendedAt,
      })
      if (effects.length > 0) await this.runEffects(next, effects, span)
      this.maybeSnapshot(command.session_id, next, ack.streamSequence)
      return Result.succeed({ state: next, event, duplicate: false })
    }
    return Result.fail(
      captureError(
        "concurrency_conflict",
        `session ${command.session_id} is changing too fast; retry the command`,
      ),
    )
  }

  /** Brings a session's state up to the end of its subject: cache → snapshot → replay. */
  private async catchUp(sessionId: string): Promise<LoadedSession> {
    const startedAt = performance.now()
    let loaded: LoadedSession | undefined = this.cache.get(sessionId)
    if (loaded === undefined) {
      const snapshot = await this.snapshots.load(sessionId)
      loaded =
        snapshot === undefined
          ? loadedFrom(initialState, 0)
          : loadedFrom(snapshot.state, snapshot.stream_sequence)
    }
    let { state, streamSequence } = loaded
    const { recentCommands } = loaded
    for await (const stored of this.events.read(sessionId, streamSequence)) {
      state = foldEvent(state, stored.event)
      streamSequence = stored.streamSequence
      recentCommands.add(stored.event.command_id)
    }
    const caughtUp = { state, streamSequence, recentCommands, confirmedAt: startedAt }
    if (state.value !== "none") this.remember(sessionId, caughtUp)
    return caughtUp
  }

  /** Arms and cancels timers; an armed timer keeps `span`'s trace context, which its firing continues. */
  private async runEffects(
    state: SessionState,
    effects: ReadonlyArray<SessionEffect>,
    span: Tracer.Span | undefined,
  ): Promise<void> {
    const timers = this.timers
    const sessionId = state.context.session_id
    if (timers === undefined || sessionId === null) return
    // Each timer is its own key: different timers are written at once (one round trip, not one
    // each), one timer's effects in their order.
    const byTimer = new Map<string, Array<SessionEffect>>()
    for (const effect of effects) byTimer.set(effect.timer, [...(byTimer.get(effect.timer) ?? []), effect])
    await Promise.all(
      [...byTimer.values()].map(async (timerEffects) => {
        for (const effect of timerEffects) {
          if (effect.type === "scheduleTimer") {
            // A session stored before its timer existed (no deadline) arms nothing.
            if (effect.deadline === "") continue
            const entry = { session_id: sessionId, timer: effect.timer, deadline: effect.deadline }
            await timers.schedule(span === undefined ? entry : { ...entry, traceparent: traceparentOf(span) })
          } else {
            await timers.cancel(sessionId, effect.timer)
          }
        }
      }),
    )
  }

  private maybeSnapshot(sessionId: string, state: SessionState, streamSequence: number): void {
    if (state.context.sequence % this.options.snapshotEvery !== 0) return
    // A snapshot is a cache: losing one costs a longer replay, never correctness.
    this.snapshots.save(sessionId, state, streamSequence).catch(() => undefined)
  }

  private remember(sessionId: string, loaded: CachedSession): void {
    if (loaded.streamSequence < (this.unreadableAt.get(sessionId) ?? 0)) return
    this.cache.delete(sessionId)
    this.cache.set(sessionId, loaded)
    if (this.cache.size > this.options.cacheSize) {
      const oldest = this.cache.keys().next().value
      if (oldest !== undefined) this.cache.delete(oldest)
    }
  }

  private serialized<A>(sessionId: string, task: () => Promise<A>): Promise<A> {
    const previous = this.inFlight.get(sessionId)
    const current = previous === undefined ? task() : previous.then(task, task)
    this.inFlight.set(sessionId, current)
    const forget = () => {
      if (this.inFlight.get(sessionId) === current) this.inFlight.delete(sessionId)
    }
    current.then(forget, forget)
    return current
  }
}
