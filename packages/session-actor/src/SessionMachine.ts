/**
 * The capture session lifecycle as an XState 5 machine over domain events.
 *
 * The machine is pure data: its events are the persisted `SessionEvent`s, so a session's state is
 * `events.reduce(transition)`. Effects (durable timers) are named actions the host runs after an
 * append; replaying history never runs them.
 *
 *   none → created → starting → active → stopping → stopped → exported
 *   created|starting ──stop──▶ stopped (aborted: no media, nothing to export)
 *   created ──expire timer──▶ failed (expired: never started)
 *   stopped (automatic stop) ──late_media timer──▶ its automatic export is asked for
 *   any non-final ──fail──▶ failed (final)
 *   starting|active: channels pause and resume (self-transitions)
 *   active|stopping: rtstreams stop and start (self-transitions)
 *
 * The replay fold runs a table compiled from this definition (`SessionFold.ts`); the export
 * rules live in `ExportPolicy.ts`.
 */
import {
  type Channel,
  type ChannelExport,
  type ChannelId,
  type CollectionId,
  type EventOf,
  type ExportedAssetIds,
  type FailureReason,
  type Metadata,
  type Rtstream,
  type RtstreamCategory,
  type RtstreamId,
  rtstreamCategoryOf,
  type SessionEvent,
  type SessionId,
  type TimerName,
} from "@capture/protocol"
import { assign, initialTransition, type SnapshotFrom, setup, transition } from "xstate"
import { automaticExport, type ChannelPause } from "./ExportPolicy.js"

/**
 * An rtstream as the session holds it: `channel_id` is always its category, whatever form the
 * history stored (see `Rtstream`); `name` is the capture channel it carries.
 */
export type SessionRtstream = Omit<Rtstream, "channel_id"> & { readonly channel_id: RtstreamCategory }

/** An rtstream as folded from a stored one: the category from `name`, the capture channel. */
const asSessionRtstream = (stored: Rtstream): SessionRtstream => ({
  rtstream_id: stored.rtstream_id,
  name: stored.name,
  channel_id: rtstreamCategoryOf(stored.name),
  media_types: stored.media_types,
})

/** Everything a session knows, built only from its events. */
export interface SessionContext {
  readonly session_id: SessionId | null
  readonly collection_id: CollectionId | null
  readonly account_id: string
  readonly end_user_id: string
  readonly client_id: string | null
  readonly callback_url: string | null
  /** The WebSocket connection named last (the view shows it). */
  readonly ws_connection_id: string | null
  /** Every WebSocket connection a command of this session named, in order of first mention. */
  readonly ws_connection_ids: ReadonlyArray<string>
  readonly metadata: Metadata
  readonly channels: ReadonlyArray<Channel>
  readonly primary_video_channel_id: ChannelId | null
  readonly rtstreams: ReadonlyArray<SessionRtstream>
  /** Rtstreams stopped by a client (`StopRtstream`) and not started again. */
  readonly stopped_rtstream_ids: ReadonlyArray<RtstreamId>
  /** When the first media arrived (`SessionActivated`): the rtstreams' creation time. */
  readonly activated_at: string | null
  readonly exports: ReadonlyArray<ChannelExport>
  /** channel → the raw asset its rtstream shows: the first completed export's that made one. */
  readonly exported_asset_ids: ExportedAssetIds
  /** Pauses of each channel, in order (`PauseChannels` / `ResumeChannels`). */
  readonly channel_pauses: ReadonlyArray<ChannelPause>
  /** When a pause or resume last changed what is captured (the silence stop waits from there). */
  readonly pauses_changed_at: string | null
  /** Whether the session reactor asked for the automatic export (it runs once). */
  readonly automatic_export_requested: boolean
  /** channel (`""` for audio only) → failed tries of its export: the next try's attempt number. */
  readonly export_failures: Readonly<Record<string, number>>
  readonly error: FailureReason | null
  readonly stop_reason: string | null
  /** When the stop was asked for (`SessionStopping`): an automatic stop's late-media cut. */
  readonly stop_requested_at: string | null
  /** An automatic stop's late-media window: segments starting before `media_before` are taken… */
  readonly media_before: string | null
  /** …until this instant, when the automatic export is asked for; null once it was (or none). */
  readonly late_media_until: string | null
  /** When a session never started fails (`expired`); null once started or for older sessions. */
  readonly expire_deadline: string | null
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
  ws_connection_ids: [],
  metadata: {},
  channels: [],
  primary_video_channel_id: null,
  rtstreams: [],
  stopped_rtstream_ids: [],
  activated_at: null,
  exports: [],
  exported_asset_ids: {},
  channel_pauses: [],
  pauses_changed_at: null,
  automatic_export_requested: false,
  export_failures: {},
  error: null,
  stop_reason: null,
  stop_requested_at: null,
  media_before: null,
  late_media_until: null,
  expire_deadline: null,
  start_deadline: null,
  stop_deadline: null,
  created_by: null,
  created_at: null,
  updated_at: null,
  sequence: 0,
}

export type GuardArgs = { readonly context: SessionContext; readonly event: SessionEvent }
/** One event's effect on the context. */
export type Update = (context: SessionContext, event: SessionEvent) => Partial<SessionContext>

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

/** The key of a channel's export in per-channel records: its id, `""` for audio only. */
export const exportKey = (video_channel_id: ChannelId | null): string => video_channel_id ?? ""

const withConnection = (ids: ReadonlyArray<string>, id: string | undefined): ReadonlyArray<string> =>
  id === undefined || id === "" || ids.includes(id) ? ids : [...ids, id]

const countFailure = (
  failures: Readonly<Record<string, number>>,
  video_channel_id: ChannelId | null,
): Readonly<Record<string, number>> => {
  const key = exportKey(video_channel_id)
  return { ...failures, [key]: (failures[key] ?? 0) + 1 }
}

const pendingExport = (video_channel_id: ChannelId | null): ChannelExport => ({
  video_channel_id,
  export_status: "exporting",
  video_id: null,
  stream_url: null,
  player_url: null,
  error: null,
})

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
export const sessionReducers = {
  created: on("SessionCreated", (_, event) => ({
    session_id: event.session_id,
    collection_id: event.data.collection_id,
    account_id: event.data.account_id,
    end_user_id: event.data.end_user_id,
    client_id: event.data.client_id ?? null,
    callback_url: event.data.callback_url ?? null,
    ws_connection_id: event.data.ws_connection_id ?? null,
    ws_connection_ids: withConnection([], event.data.ws_connection_id),
    metadata: event.data.metadata,
    created_by: event.command_id,
    expire_deadline: event.data.expire_deadline ?? null,
  })),
  starting: on("SessionStarting", (context, event) => ({
    channels: event.data.channels,
    primary_video_channel_id: event.data.primary_video_channel_id,
    callback_url: event.data.callback_url ?? context.callback_url,
    ws_connection_id: event.data.ws_connection_id ?? context.ws_connection_id,
    ws_connection_ids: withConnection(context.ws_connection_ids, event.data.ws_connection_id),
    expire_deadline: null,
    start_deadline: event.data.start_deadline,
  })),
  paused: on("ChannelsPaused", (context, event) => ({
    channel_pauses: [
      ...context.channel_pauses,
      ...event.data.channel_ids.map((channel_id) => ({
        channel_id,
        from_ms: event.data.at_ms,
        to_ms: null,
      })),
    ],
    pauses_changed_at: event.time,
  })),
  resumed: on("ChannelsResumed", (context, event) => ({
    channel_pauses: context.channel_pauses.map((p) =>
      p.to_ms === null && event.data.channel_ids.includes(p.channel_id)
        ? { ...p, to_ms: Math.max(p.from_ms, event.data.at_ms) }
        : p,
    ),
    pauses_changed_at: event.time,
  })),
  activated: on("SessionActivated", (_, event) => ({
    rtstreams: event.data.rtstreams.map(asSessionRtstream),
    activated_at: event.time,
    start_deadline: null,
  })),
  rtstreamStopped: on("RtstreamStopped", (context, event) => ({
    stopped_rtstream_ids: [...context.stopped_rtstream_ids, event.data.rtstream_id],
  })),
  rtstreamStarted: on("RtstreamStarted", (context, event) => ({
    stopped_rtstream_ids: context.stopped_rtstream_ids.filter((id) => id !== event.data.rtstream_id),
  })),
  stopping: on("SessionStopping", (_, event) => ({
    stop_reason: event.data.reason,
    stop_requested_at: event.time,
    stop_deadline: event.data.stop_deadline,
  })),
  stopped: on("SessionStopped", (context, event) => {
    const automatic = automaticExport(context.channels, context.primary_video_channel_id, event.data.reason)
    return {
      stop_reason: event.data.reason,
      media_before: event.data.media_before ?? null,
      late_media_until: event.data.late_media_until ?? null,
      expire_deadline: null,
      start_deadline: null,
      stop_deadline: null,
      exports:
        automatic === undefined ? context.exports : withExport(context.exports, pendingExport(automatic)),
    }
  }),
  exportRequested: on("ExportRequested", (context, event) => ({
    exports: withExport(context.exports, pendingExport(event.data.video_channel_id)),
    ws_connection_id: event.data.ws_connection_id ?? context.ws_connection_id,
    ws_connection_ids: withConnection(context.ws_connection_ids, event.data.ws_connection_id),
    automatic_export_requested: context.automatic_export_requested || event.data.automatic === true,
    // Any export closes the late-media window: what it reads is what the video holds.
    late_media_until: null,
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
    export_failures: countFailure(context.export_failures, event.data.video_channel_id),
  })),
  failed: on("SessionFailed", (_, event) => ({
    error: event.data.error,
    late_media_until: null,
    expire_deadline: null,
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
    export_failures: countFailure(context.export_failures, event.data.video_channel_id),
    error: event.data.error,
  })),
} satisfies Record<string, Update>

/** The names of the fold's reducers (the compiled transition table looks them up). */
export type ReducerName = keyof typeof sessionReducers

/** The machine's guards, by name. */
export const sessionGuards = {
  /** An export failure ends the session only when no other export can still produce a video. */
  lastHopeFailed: ({ context, event }: GuardArgs) =>
    event.type === "ExportFailed" &&
    !context.exports.some(
      (e) => e.video_channel_id !== event.data.video_channel_id && e.export_status !== "failed",
    ),
}

const assignFrom = (reducer: Update) =>
  assign<SessionContext, SessionEvent, undefined, SessionEvent, never>(({ context, event }: GuardArgs) =>
    reducer(context, event),
  )

/** The session machine. Version it when a change alters how existing histories fold. */
export const sessionMachine = setup({
  types: {
    context: {} as SessionContext,
    events: {} as SessionEvent,
  },
  actions: {
    created: assignFrom(sessionReducers.created),
    paused: assignFrom(sessionReducers.paused),
    resumed: assignFrom(sessionReducers.resumed),
    starting: assignFrom(sessionReducers.starting),
    activated: assignFrom(sessionReducers.activated),
    rtstreamStopped: assignFrom(sessionReducers.rtstreamStopped),
    rtstreamStarted: assignFrom(sessionReducers.rtstreamStarted),
    stopping: assignFrom(sessionReducers.stopping),
    stopped: assignFrom(sessionReducers.stopped),
    exportRequested: assignFrom(sessionReducers.exportRequested),
    exportCompleted: assignFrom(sessionReducers.exportCompleted),
    exportFailed: assignFrom(sessionReducers.exportFailed),
    failed: assignFrom(sessionReducers.failed),
    exportFailedFinal: assignFrom(sessionReducers.exportFailedFinal),
    /** Effects: durable timers, run by the host after the append. */
    scheduleTimer: (_: unknown, _params: { readonly timer: TimerName; readonly deadline: string }) => {},
    cancelTimer: (_: unknown, _params: { readonly timer: TimerName }) => {},
  },
  guards: sessionGuards,
}).createMachine({
  id: "captureSession",
  context: emptyContext,
  initial: "none",
  states: {
    none: {
      on: { SessionCreated: { target: "created", actions: "created" } },
    },
    created: {
      entry: {
        type: "scheduleTimer",
        params: ({ context }) => ({ timer: "expire", deadline: context.expire_deadline ?? "" }),
      },
      exit: { type: "cancelTimer", params: { timer: "expire" } },
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
        ChannelsPaused: { actions: "paused" },
        ChannelsResumed: { actions: "resumed" },
      },
    },
    active: {
      on: {
        SessionStopping: { target: "stopping", actions: "stopping" },
        ChannelsPaused: { actions: "paused" },
        ChannelsResumed: { actions: "resumed" },
        RtstreamStopped: { actions: "rtstreamStopped" },
        RtstreamStarted: { actions: "rtstreamStarted" },
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
        RtstreamStopped: { actions: "rtstreamStopped" },
        RtstreamStarted: { actions: "rtstreamStarted" },
        SessionFailed: { target: "failed", actions: "failed" },
      },
    },
    stopped: {
      entry: {
        type: "scheduleTimer",
        params: ({ context }) => ({ timer: "late_media", deadline: context.late_media_until ?? "" }),
      },
      exit: { type: "cancelTimer", params: { timer: "late_media" } },
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
