/**
 * From domain events to the lifecycle events users see (`capture_session.*`): webhooks and the
 * WebSocket both announce exactly these, so the mapping lives once, next to the fold.
 */
import type { LifecycleEvent, SessionEvent } from "@capture/protocol"
import type { SessionState } from "./SessionMachine.js"

/**
 * The lifecycle event `event` announces, given the session's state after it; undefined for events
 * users do not see (an export request, an export failure that leaves the session as it was).
 * The lifecycle event's id is the domain event's id: stable across retries and redeliveries.
 */
export const toLifecycleEvent = (event: SessionEvent, after: SessionState): LifecycleEvent | undefined => {
  const base = {
    id: event.id,
    capture_session_id: event.session_id,
    end_user_id: after.context.end_user_id,
    timestamp: event.time,
  }
  switch (event.type) {
    case "SessionCreated":
      return { ...base, event: "capture_session.created", status: "created", data: {} }
    case "SessionStarting":
      return { ...base, event: "capture_session.starting", status: "starting", data: {} }
    case "SessionActivated":
      return {
        ...base,
        event: "capture_session.active",
        status: "active",
        data: {
          rtstreams: event.data.rtstreams.map((r) => ({
            rtstream_id: r.rtstream_id,
            name: r.name,
            media_types: r.media_types,
          })),
        },
      }
    case "SessionStopping":
      return { ...base, event: "capture_session.stopping", status: "stopping", data: {} }
    case "SessionStopped":
      return { ...base, event: "capture_session.stopped", status: "stopped", data: {} }
    case "ExportCompleted":
      return {
        ...base,
        event: "capture_session.exported",
        status: "exported",
        data: {
          exported_video_id: event.data.video_id,
          stream_url: event.data.stream_url,
          player_url: event.data.player_url,
          video_channel_id: event.data.video_channel_id,
          ...(event.data.asset_ids === undefined ? {} : { exported_asset_ids: event.data.asset_ids }),
        },
      }
    case "SessionFailed":
      return { ...base, event: "capture_session.failed", status: "failed", data: { error: event.data.error } }
    case "ExportFailed":
      // Only the export that leaves nothing to deliver fails the session; that one users see.
      return after.value === "failed"
        ? { ...base, event: "capture_session.failed", status: "failed", data: { error: event.data.error } }
        : undefined
    case "ExportRequested":
    case "ChannelsPaused":
    case "ChannelsResumed":
    case "RtstreamStopped":
    case "RtstreamStarted":
      return undefined
  }
}

/** Where a session's events go: its webhook URL and WebSocket connections, as of some event. */
export interface EventRouting {
  readonly account_id: string
  readonly end_user_id: string
  readonly callback_url: string | null
  /** Every WebSocket connection a command of this session named, in order of first mention. */
  readonly ws_connection_ids: ReadonlyArray<string>
}

/** Routing before a session's first event. */
export const emptyRouting: EventRouting = {
  account_id: "",
  end_user_id: "",
  callback_url: null,
  ws_connection_ids: [],
}

const withConnection = (ids: ReadonlyArray<string>, id: string | undefined): ReadonlyArray<string> =>
  id === undefined || id === "" || ids.includes(id) ? ids : [...ids, id]

/**
 * Routing after `event`: created sets it up; start may replace the callback URL and add a
 * connection; an export request may add a connection (its result goes there too).
 */
export const nextRouting = (routing: EventRouting, event: SessionEvent): EventRouting => {
  switch (event.type) {
    case "SessionCreated":
      return {
        account_id: event.data.account_id,
        end_user_id: event.data.end_user_id,
        callback_url: event.data.callback_url ?? null,
        ws_connection_ids: withConnection([], event.data.ws_connection_id),
      }
    case "SessionStarting":
      return {
        ...routing,
        callback_url: event.data.callback_url ?? routing.callback_url,
        ws_connection_ids: withConnection(routing.ws_connection_ids, event.data.ws_connection_id),
      }
    case "ExportRequested":
      return {
        ...routing,
        ws_connection_ids: withConnection(routing.ws_connection_ids, event.data.ws_connection_id),
      }
    default:
      return routing
  }
}
