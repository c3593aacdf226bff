/**
 * The session state after each event, which the lifecycle event it announces depends on (the
 * status it reaches, the exports it holds). Kept per process and folded forward as a session's
 * events come in order; on a miss, folded from the latest snapshot before the event plus the
 * stream.
 */
import type { LifecycleEvent, SessionEvent } from "@capture/protocol"
import {
  type EventStore,
  foldEvent,
  initialState,
  type SessionState,
  type SnapshotStore,
  toLifecycleEvent,
  UnappliableEvent,
  UnreadableEvent,
} from "@capture/session-actor"

/** A folded state and the stream sequence of the event it ends with. */
interface Folded {
  readonly state: SessionState
  readonly streamSequence: number
}

const CACHE_SIZE = 10_000

export class StateFold {
  /** Per session, the latest state folded here; least recently used first. */
  private readonly states = new Map<string, Folded>()

  constructor(
    private readonly events: EventStore,
    private readonly snapshots: SnapshotStore,
    private readonly log: (message: string) => void,
  ) {}

  /**
   * The lifecycle event `event` (stored at `streamSequence`) announces, if any. A history that
   * does not fold up to the event is logged and announces nothing.
   */
  async lifecycleOf(event: SessionEvent, streamSequence: number): Promise<LifecycleEvent | undefined> {
    try {
      return toLifecycleEvent(event, await this.stateAfter(event, streamSequence))
    } catch (error) {
      if (!(error instanceof UnappliableEvent) && !(error instanceof UnreadableEvent)) throw error
      this.log(
        `webhooks: ${event.session_id} #${event.sequence} cannot be folded (${error.message}); not sent`,
      )
      return undefined
    }
  }

  private async stateAfter(event: SessionEvent, streamSequence: number): Promise<SessionState> {
    const sessionId = event.session_id
    const cached = this.states.get(sessionId)
    if (cached !== undefined && cached.state.context.sequence === event.sequence) return cached.state
    let base: Folded | undefined =
      cached !== undefined && cached.state.context.sequence < event.sequence ? cached : undefined
    if (base === undefined) {
      const snapshot = await this.snapshots.load(sessionId)
      base =
        snapshot !== undefined && snapshot.state.context.sequence < event.sequence
          ? { state: snapshot.state, streamSequence: snapshot.stream_sequence }
          : { state: initialState, streamSequence: 0 }
    }
    let state = base.state
    if (state.context.sequence === event.sequence - 1) {
      state = foldEvent(state, event)
    } else {
      for await (const stored of this.events.read(sessionId, base.streamSequence)) {
        if (stored.event.sequence > event.sequence) break
        if (stored.event.sequence > state.context.sequence) state = foldEvent(state, stored.event)
        if (stored.event.sequence === event.sequence) break
      }
      if (state.context.sequence !== event.sequence) throw new UnappliableEvent(event, state.value)
    }
    this.states.delete(sessionId)
    this.states.set(sessionId, { state, streamSequence })
    if (this.states.size > CACHE_SIZE) {
      const oldest = this.states.keys().next().value
      if (oldest !== undefined) this.states.delete(oldest)
    }
    return state
  }
}
