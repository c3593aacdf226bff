/** Command builders for tests (from packages/session-actor/test/commands.ts): each call gets a fresh command id. */
import {
  type ChannelInput,
  type CommandId,
  DEFAULT_COLLECTION,
  newCommandId,
  type SessionCommand,
  type SessionId,
  type VideoId,
} from "@capture/protocol"

type Without<C> = C extends unknown ? Omit<C, "type" | "command_id" | "session_id"> : never
type Payload<T extends SessionCommand["type"]> = Without<Extract<SessionCommand, { type: T }>>

export const cmd = <T extends SessionCommand["type"]>(
  type: T,
  session_id: SessionId,
  payload: Payload<T>,
  command_id: CommandId = newCommandId(),
): SessionCommand => ({ type, command_id, session_id, ...payload }) as unknown as SessionCommand

/** Creates a session of account `acct-1` whose webhooks go to `callback_url`. */
export const create = (id: SessionId, callback_url?: string, account_id = "acct-1") =>
  cmd("CreateSession", id, {
    collection_id: DEFAULT_COLLECTION,
    end_user_id: "user-1",
    account_id,
    ...(callback_url === undefined ? {} : { callback_url }),
  })

export const defaultChannels: ReadonlyArray<ChannelInput> = [
  { channel_id: "mic:default" },
  { channel_id: "system_audio:default", store: false },
  { channel_id: "display:1" },
]

export const start = (id: SessionId, channels: ReadonlyArray<ChannelInput> = defaultChannels) =>
  cmd("StartSession", id, { channels })
export const media = (id: SessionId, channel_id = "mic:default") =>
  cmd("ReportMediaReceived", id, { channel_id })
export const stop = (id: SessionId) => cmd("StopSession", id, {})
export const finish = (id: SessionId) => cmd("FinishStopping", id, {})
export const exportOf = (id: SessionId) => cmd("RequestExport", id, {})
export const completeExport = (id: SessionId) =>
  cmd("CompleteExport", id, {
    video_channel_id: "display:1",
    video_id: "m-1" as VideoId,
    stream_url: "https://example.com/s.m3u8",
    player_url: "https://example.com/p",
  })

/** Every command of a session's whole life: create → … → exported (seven events, six announced). */
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
