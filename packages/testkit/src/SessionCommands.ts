/** Session command builders for tests: each call gets a fresh command id. */
import {
  type ChannelInput,
  type CommandId,
  DEFAULT_COLLECTION,
  newCommandId,
  type SessionCommand,
  type SessionId,
} from "@capture/protocol"

type Without<C> = C extends unknown ? Omit<C, "type" | "command_id" | "session_id"> : never
type Payload<T extends SessionCommand["type"]> = Without<Extract<SessionCommand, { type: T }>>

export const cmd = <T extends SessionCommand["type"]>(
  type: T,
  session_id: SessionId,
  payload: Payload<T>,
  command_id: CommandId = newCommandId(),
): SessionCommand => ({ type, command_id, session_id, ...payload }) as unknown as SessionCommand

export const create = (id: SessionId, end_user_id = "user-1") =>
  cmd("CreateSession", id, { collection_id: DEFAULT_COLLECTION, end_user_id })

export const start = (id: SessionId, channels: ReadonlyArray<ChannelInput> = defaultChannels) =>
  cmd("StartSession", id, { channels })

export const defaultChannels: ReadonlyArray<ChannelInput> = [
  { channel_id: "mic:default" },
  { channel_id: "system_audio:default", store: false },
  { channel_id: "display:1" },
]

export const media = (id: SessionId, channel_id = "mic:default") =>
  cmd("ReportMediaReceived", id, { channel_id })
export const stop = (id: SessionId) => cmd("StopSession", id, {})
export const finish = (id: SessionId) => cmd("FinishStopping", id, {})
export const exportOf = (id: SessionId, video_channel_id?: string) =>
  cmd("RequestExport", id, video_channel_id === undefined ? {} : { video_channel_id })
