/** Webhook test commands: the shared builders (from @capture/testkit) plus a whole session's life. */
import { DEFAULT_COLLECTION, type SessionCommand, type SessionId, type VideoId } from "@capture/protocol"
import { cmd, finish, media, start, stop } from "@capture/testkit"

export { cmd, finish, media, start, stop }

/** Creates a session of account `acct-1` whose webhooks go to `callback_url`. */
export const create = (id: SessionId, callback_url?: string, account_id = "acct-1") =>
  cmd("CreateSession", id, {
    collection_id: DEFAULT_COLLECTION,
    end_user_id: "user-1",
    account_id,
    ...(callback_url === undefined ? {} : { callback_url }),
  })

export const exportOf = (id: SessionId) => cmd("RequestExport", id, {})
export const completeExport = (id: SessionId) =>
  cmd("CompleteExport", id, {
    video_channel_id: "display:1",
    video_id: "m-1" as VideoId,
    stream_url: "https://example.com/s.m3u8",
    player_url: "https://example.com/p",
  })

/**
 * Every command of a session's whole life: create → … → exported (six events, each announced).
 * The stop starts the export, so the export request only reports it: it stores nothing.
 */
export const wholeLife = (id: SessionId, callback_url: string): ReadonlyArray<SessionCommand> => [
  create(id, callback_url),
  start(id),
  media(id),
  stop(id),
  finish(id),
  exportOf(id),
  completeExport(id),
]

/** The lifecycle events `wholeLife` announces, in order. */
export const wholeLifeEvents = [
  "capture_session.created",
  "capture_session.starting",
  "capture_session.active",
  "capture_session.stopping",
  "capture_session.stopped",
  "capture_session.exported",
]
