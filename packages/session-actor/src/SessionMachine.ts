/**
 * The capture session lifecycle as an XState 5 machine over domain events.
 *
 * The machine is pure data: its events are the persisted `SessionEvent`s, so a session's state is
 * `events.reduce(transition)`. Effects (durable timers) are named actions the host runs after an
 * append; replaying history never runs them.
 *
 *   none → created → starting → active → stopping → stopped → exported
 *   created|starting ──stop──▶ stopped (aborted: no media, nothing to export)
 *   any non-final ──fail──▶ failed (final)
 */
import type {
  Channel,
  ChannelExport,
  ChannelId,
  CollectionId,
  EventOf,
  ExportedAssetIds,
  FailureReason,
  Metadata,
  Rtstream,
  SessionEvent,
  SessionId,
  TimerName,
} from "@capture/protocol"
import { assign, initialTransition, type SnapshotFrom, setup, transition } from "xstate"

/** Everything a session knows, built only from its events. */
export interface SessionContext {
  readonly session_id: SessionId | null
  readonly collection_id: CollectionId | null
  readonly account_id: string
  readonly end_user_id: string
  readonly client_id: string | null
  readonly callback_url: string | null
  readonly ws_connection_id: string | null
  readonly metadata: Metadata
  readonly channels: ReadonlyArray<Channel>
  readonly primary_video_channel_id: ChannelId | null
  readonly rtstreams: ReadonlyArray<Rtstream>
  readonly exports: ReadonlyArray<ChannelExport>
  /** channel → the raw asset its rtstream shows: the first completed export's that made one. */
  readonly exported_asset_ids: ExportedAssetIds
  readonly error: FailureReason | null
  readonly stop_reason: string | null
  readonly start_deadline: string | null
  readonly stop_deadline: string | null
  /** The command that created the session, so a late retry of it is recognised. */
  readonly created_by: string | null
  readonly created_at: string | null
  readonly updated_at: string | null
  /** The per-session sequence of the last event applied (0 before any). */
  readonly sequence: number
}

const emptyContext: SessionContext = {
  session_id: null,
  collection_id: null,
  account_id: "",
  end_user_id: "",
  client_id: null,
  callback_url: null,
  ws_connection_id: null,
  metadata: {},
  channels: [],
  primary_video_channel_id: null,
  rtstreams: [],
  exports: [],
  exported_asset_ids: {},
  error: null,
  stop_reason: null,
  start_deadline: null,
  stop_deadline: null,
  created_by: null,
  created_at: null,
  updated_at: null,
  sequence: 0,
}

type Args = { readonly context: SessionContext; readonly event: SessionEvent }
type Update = (context: SessionContext, event: SessionEvent) => Partial<SessionContext>

/**
 * A reducer for one event type that also stamps what every accepted event advances: sequence,
 * update time (other types leave the context unchanged). One assign per transition: XState's
 * cost grows with the actions it resolves.
 */
const on =
  <T extends SessionEvent["type"]>(
    type: T,
    update: (context: SessionContext, event: EventOf<T>) => Partial<SessionContext>,
  ): Update =>
  (context, event) => {
    if (event.type !== type) return {}
    const partial: { -readonly [K in keyof SessionContext]?: SessionContext[K] } = update(
      context,
      event as EventOf<T>,
    )
    partial.sequence = event.sequence
    partial.updated_at = event.time
    partial.created_at = context.created_at ?? event.time
    return partial
  }

/** Replaces a channel's export in place (keeping request order), or appends the first one. */
const withExport = (
  exports: ReadonlyArray<ChannelExport>,
  next: ChannelExport,
): ReadonlyArray<ChannelExport> =>
  exports.some((e) => e.video_channel_id === next.video_channel_id)
    ? exports.map((e) => (e.video_channel_id === next.video_channel_id ? next : e))
    : [...exports, next]

const pendingExport = (video_channel_id: ChannelId | null): ChannelExport => ({
  video_channel_id,
  export_status: "exporting",
  video_id: null,
  stream_url: null,
  player_url: null,
  error: null,
})

/**
 * The video channel of a session's main export: the primary display if stored, else the first
 * stored display, else null (audio only).
 */
export const mainExportChannel = (
  channels: ReadonlyArray<Channel>,
  primary: ChannelId | null,
): ChannelId | null => {
  const stored = channels.filter((c) => c.store && c.type === "video")
  return stored.find((c) => c.channel_id === primary)?.channel_id ?? stored[0]?.channel_id ?? null
}

/**
 * The video channel of the export a session makes by itself when it stops (its main export), or
 * undefined when it makes none: an aborted stop (nothing was captured) or no channel with
 * `store: true`. The muxer runs exactly this export; the fold shows it `exporting` from the stop.
 */
export const automaticExport = (
  channels: ReadonlyArray<Channel>,
  primary: ChannelId | null,
  stopReason: string,
): ChannelId | null | undefined =>
  stopReason === "aborted" || !channels.some((c) => c.store)
    ? undefined
    : mainExportChannel(channels, primary)

/** Asset ids of a completed export, for channels that do not have one yet (the first export wins). */
const withAssetIds = (current: ExportedAssetIds, added: ExportedAssetIds | undefined): ExportedAssetIds => {
  if (added === undefined) return current
  const fresh = Object.entries(added).filter(([channel]) => current[channel] === undefined)
  return fresh.length === 0 ? current : { ...current, ...Object.fromEntries(fresh) }
}

/**
 * How each event folds into the context. The machine's assign actions and the compiled replay
 * fold both call these, so there is one definition of the fold.
 */
const reducers = {
  created: on("SessionCreated", (_, event) => ({
    session_id: event.session_id,
    collection_id: event.data.collection_id,
    account_id: event.data.account_id,
    end_user_id: event.data.end_user_id,
    client_id: event.data.client_id ?? null,
    callback_url: event.data.callback_url ?? null,
    ws_connection_id: event.data.ws_connection_id ?? null,
    metadata: event.data.metadata,
    created_by: event.command_id,
  })),
  starting: on("SessionStarting", (context, event) => ({
    channels: event.data.channels,
    primary_video_channel_id: event.data.primary_video_channel_id,
    callback_url: event.data.callback_url ?? context.callback_url,
    ws_connection_id: event.data.ws_connection_id ?? context.ws_connection_id,
    start_deadline: event.data.start_deadline,
  })),
  activated: on("SessionActivated", (_, event) => ({
    rtstreams: event.data.rtstreams,
    start_deadline: null,
  })),
  stopping: on("SessionStopping", (_, event) => ({
    stop_reason: event.data.reason,
    stop_deadline: event.data.stop_deadline,
  })),
  stopped: on("SessionStopped", (context, event) => {
    const automatic = automaticExport(context.channels, context.primary_video_channel_id, event.data.reason)
    return {
      stop_reason: event.data.reason,
      start_deadline: null,
      stop_deadline: null,
      exports:
        automatic === undefined ? context.exports : withExport(context.exports, pendingExport(automatic)),
    }
  }),
  exportRequested: on("ExportRequested", (context, event) => ({
    exports: withExport(context.exports, pendingExport(event.data.video_channel_id)),
    ws_connection_id: event.data.ws_connection_id ?? context.ws_connection_id,
  })),
  exportCompleted: on("ExportCompleted", (context, event) => ({
    exports: withExport(context.exports, {
      video_channel_id: event.data.video_channel_id,
      export_status: "exported",
      video_id: event.data.video_id,
      stream_url: event.data.stream_url,
      player_url: event.data.player_url,
      error: null,
    }),
    exported_asset_ids: withAssetIds(context.exported_asset_ids, event.data.asset_ids),
  })),
  exportFailed: on("ExportFailed", (context, event) => ({
    exports: withExport(context.exports, {
      ...pendingExport(event.data.video_channel_id),
      export_status: "failed",
      error: event.data.error,
    }),
  })),
  failed: on("SessionFailed", (_, event) => ({
    error: event.data.error,
    start_deadline: null,
    stop_deadline: null,
  })),
  /** The last export that could have produced a video failed: so does the session. */
  exportFailedFinal: on("ExportFailed", (context, event) => ({
    exports: withExport(context.exports, {
      ...pendingExport(event.data.video_channel_id),
      export_status: "failed",
      error: event.data.error,
    }),
    error: event.data.error,
  })),
} satisfies Record<string, Update>

type ReducerName = keyof typeof reducers

const guards = {
  /** An export failure ends the session only when no other export can still produce a video. */
  lastHopeFailed: ({ context, event }: Args) =>
    event.type === "ExportFailed" &&
    !context.exports.some(
      (e) => e.video_channel_id !== event.data.video_channel_id && e.export_status !== "failed",
    ),
}

const assignFrom = (reducer: Update) =>
  assign<SessionContext, SessionEvent, undefined, SessionEvent, never>(({ context, event }: Args) =>
    reducer(context, event),
  )

/** The session machine. Version it when a change alters how existing histories fold. */
export const sessionMachine = setup({
  types: {
    context: {} as SessionContext,
    events: {} as SessionEvent,
  },
  actions: {
    created: assignFrom(reducers.created),
    starting: assignFrom(reducers.starting),
    activated: assignFrom(reducers.activated),
    stopping: assignFrom(reducers.stopping),
    stopped: assignFrom(reducers.stopped),
    exportRequested: assignFrom(reducers.exportRequested),
    exportCompleted: assignFrom(reducers.exportCompleted),
    exportFailed: assignFrom(reducers.exportFailed),
    failed: assignFrom(reducers.failed),
    exportFailedFinal: assignFrom(reducers.exportFailedFinal),
    /** Effects: durable timers, run by the host after the append. */
    scheduleTimer: (_: unknown, _params: { readonly timer: TimerName; readonly deadline: string }) => {},
    cancelTimer: (_: unknown, _params: { readonly timer: TimerName }) => {},
  },
  guards,
}).createMachine({
  id: "captureSession",
  context: emptyContext,
  initial: "none",
  states: {
    none: {
      on: { SessionCreated: { target: "created", actions: "created" } },
    },
    created: {
      on: {
        SessionStarting: { target: "starting", actions: "starting" },
        SessionStopped: { target: "stopped", actions: "stopped" },
        SessionFailed: { target: "failed", actions: "failed" },
      },
    },
    starting: {
      entry: {
        type: "scheduleTimer",
        params: ({ context }) => ({ timer: "start", deadline: context.start_deadline ?? "" }),
      },
      exit: { type: "cancelTimer", params: { timer: "start" } },
      on: {
        SessionActivated: { target: "active", actions: "activated" },
        SessionStopped: { target: "stopped", actions: "stopped" },
        SessionFailed: { target: "failed", actions: "failed" },
      },
    },
    active: {
      on: {
        SessionStopping: { target: "stopping", actions: "stopping" },
        SessionFailed: { target: "failed", actions: "failed" },
      },
    },
    stopping: {
      entry: {
        type: "scheduleTimer",
        params: ({ context }) => ({ timer: "stop", deadline: context.stop_deadline ?? "" }),
      },
      exit: { type: "cancelTimer", params: { timer: "stop" } },
      on: {
        SessionStopped: { target: "stopped", actions: "stopped" },
        SessionFailed: { target: "failed", actions: "failed" },
      },
    },
    stopped: {
      on: {
        ExportRequested: { actions: "exportRequested" },
        ExportCompleted: { target: "exported", actions: "exportCompleted" },
        ExportFailed: [
          { guard: "lastHopeFailed", target: "failed", actions: "exportFailedFinal" },
          { actions: "exportFailed" },
        ],
        SessionFailed: { target: "failed", actions: "failed" },
      },
    },
    exported: {
      on: {
        ExportRequested: { actions: "exportRequested" },
        ExportCompleted: { actions: "exportCompleted" },
        ExportFailed: { actions: "exportFailed" },
      },
    },
    failed: { type: "final" },
  },
})

/** An XState snapshot of the session machine. */
export type SessionSnapshot = SnapshotFrom<typeof sessionMachine>
/** A session status, plus `none` before the session exists. */
export type SessionStateValue =
  | "none"
  | "created"
  | "starting"
  | "active"
  | "stopping"
  | "stopped"
  | "exported"
  | "failed"

/** A session's state as plain JSON: what snapshots persist and what the fold produces. */
export interface SessionState {
  readonly value: SessionStateValue
  readonly context: SessionContext
}

/** The state before any event. */
export const initialState: SessionState = { value: "none", context: emptyContext }

/** An effect the host runs after appending an event. */
export type SessionEffect =
  | { readonly type: "scheduleTimer"; readonly timer: TimerName; readonly deadline: string }
  | { readonly type: "cancelTimer"; readonly timer: TimerName }

/** An event that does not fold onto a state: a corrupt or foreign history, never skipped. */
export class UnappliableEvent extends Error {
  constructor(
    readonly event: SessionEvent,
    readonly state: SessionStateValue,
  ) {
    super(`event #${event.sequence} ${event.type} cannot be applied in state ${state}`)
  }
}

// The XState snapshot behind each state `applyEvent` returned, so the next command on a cached
// session does not pay for `resolveState` again.
const snapshots = new WeakMap<SessionState, SessionSnapshot>()

const toSnapshot = (state: SessionState): SessionSnapshot =>
  snapshots.get(state) ??
  (state.value === "none" && state.context === emptyContext
    ? initialTransition(sessionMachine)[0]
    : sessionMachine.resolveState({ value: state.value, context: state.context }))

/**
 * Applies one event with XState's interpreter (`transition`): the reference semantics of the
 * machine. `applyEvent` must agree with it on every history (property-tested, and checked by
 * `capture replay --verify` on every stored session).
 */
export const transitionWithXState = (
  state: SessionState,
  event: SessionEvent,
): readonly [SessionState, ReadonlyArray<SessionEffect>] => {
  if (event.sequence !== state.context.sequence + 1) throw new UnappliableEvent(event, state.value)
  const [next, actions] = transition(sessionMachine, toSnapshot(state), event)
  // Every reducer stamps the sequence, so an unchanged sequence means no transition took it.
  if (next.context.sequence !== event.sequence) throw new UnappliableEvent(event, state.value)
  const effects: Array<SessionEffect> = []
  for (const action of actions) {
    if (action.type === "scheduleTimer" || action.type === "cancelTimer") {
      effects.push({ type: action.type, ...(action.params as object) } as SessionEffect)
    }
  }
  const nextState: SessionState = { value: next.value as SessionStateValue, context: next.context }
  snapshots.set(nextState, next)
  return [nextState, effects]
}

// --- the compiled machine ------------------------------------------------------------------------
// XState's interpreter costs ~20 µs per event (more under GC pressure): too much for replaying
// millions of events, and half the host's budget per command. The machine is flat (no nested or
// parallel states, no eventless or delayed transitions), so at load its definition compiles to a
// table of (state, event type) → candidates, each a guard, a target, reducers, and the exit/entry
// effects a state change runs. The machine stays the single definition; the table is derived.

type EffectSpec = { readonly type: SessionEffect["type"]; readonly params: unknown }

interface CompiledTransition {
  readonly guard: keyof typeof guards | undefined
  readonly target: SessionStateValue | undefined
  readonly reducers: ReadonlyArray<Update>
  /** Exit actions of the source, then entry actions of the target (only when the state changes). */
  readonly effects: ReadonlyArray<EffectSpec>
}

const effectSpecs = (actions: ReadonlyArray<unknown>, where: string): ReadonlyArray<EffectSpec> =>
  actions.map((action) => {
    const spec = action as { type?: unknown; params?: unknown }
    if (spec.type !== "scheduleTimer" && spec.type !== "cancelTimer") {
      throw new Error(`${where} runs ${String(spec.type)}, which the compiled machine cannot run`)
    }
    return { type: spec.type, params: spec.params }
  })

const compile = (): ReadonlyMap<string, ReadonlyArray<CompiledTransition>> => {
  const table = new Map<string, ReadonlyArray<CompiledTransition>>()
  for (const [key, node] of Object.entries(sessionMachine.root.states)) {
    if (Object.keys(node.states).length > 0 || node.always || node.after.length > 0) {
      throw new Error(`session machine state ${key} is not flat; the compiled fold cannot represent it`)
    }
    const exit = effectSpecs(node.exit, `exit of ${key}`)
    for (const [eventType, candidates] of node.transitions) {
      table.set(
        `${key}/${eventType}`,
        candidates.map((candidate) => {
          const guard = candidate.guard
          if (guard !== undefined && (typeof guard !== "string" || !(guard in guards))) {
            throw new Error(`unsupported guard on ${key}/${eventType}`)
          }
          const targetNode = candidate.target?.[0]
          const changes = targetNode !== undefined && targetNode.key !== key
          return {
            guard: guard as keyof typeof guards | undefined,
            target: targetNode?.key as SessionStateValue | undefined,
            effects: changes ? [...exit, ...effectSpecs(targetNode.entry, `entry of ${targetNode.key}`)] : [],
            reducers: candidate.actions.map((action) => {
              const name = typeof action === "string" ? action : (action as { type?: unknown }).type
              if (typeof name !== "string" || !(name in reducers)) {
                throw new Error(
                  `transition ${key}/${eventType} runs ${String(name)}, which the fold cannot run`,
                )
              }
              return reducers[name as ReducerName] as Update
            }),
          }
        }),
      )
    }
  }
  return table
}

const compiled = compile()

const noEffects: ReadonlyArray<SessionEffect> = []

const match = (state: SessionState, event: SessionEvent): CompiledTransition => {
  if (event.sequence !== state.context.sequence + 1) throw new UnappliableEvent(event, state.value)
  const candidates = compiled.get(`${state.value}/${event.type}`)
  if (candidates !== undefined) {
    for (const candidate of candidates) {
      if (candidate.guard === undefined || guards[candidate.guard]({ context: state.context, event }))
        return candidate
    }
  }
  throw new UnappliableEvent(event, state.value)
}

const reduce = (state: SessionState, event: SessionEvent, candidate: CompiledTransition): SessionState => {
  let context = state.context
  // Spread, not Object.assign: V8 clones object literals by shape, several times faster here.
  for (const update of candidate.reducers) context = { ...context, ...update(context, event) }
  return { value: candidate.target ?? state.value, context }
}

/**
 * Applies one event and returns the next state with the effects to run (timers): the machine's
 * pure transition, as the host runs it for each new event. Throws `UnappliableEvent` when the
 * machine does not accept the event, or when it is not the next in sequence: a history that does
 * not fold is corrupt, never silently skipped.
 */
export const applyEvent = (
  state: SessionState,
  event: SessionEvent,
): readonly [SessionState, ReadonlyArray<SessionEffect>] => {
  const candidate = match(state, event)
  const next = reduce(state, event, candidate)
  if (candidate.effects.length === 0) return [next, noEffects]
  const effects = candidate.effects.map(
    ({ type, params }) =>
      ({
        type,
        ...(typeof params === "function" ? params({ context: next.context, event }) : params),
      }) as SessionEffect,
  )
  return [next, effects]
}

/** One fold step without effects (replay). */
export const foldEvent = (state: SessionState, event: SessionEvent): SessionState =>
  reduce(state, event, match(state, event))

/** Folds a history (or a tail onto a snapshot's state). */
export const foldEvents = (
  events: Iterable<SessionEvent>,
  from: SessionState = initialState,
): SessionState => {
  let state = from
  for (const event of events) state = foldEvent(state, event)
  return state
}
