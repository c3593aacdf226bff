/**
 * Channels: one captured source each. An id names a kind and a device (`mic:default`,
 * `display:1`, `system_audio:default`, `camera:…`; older clients say `screen:` for displays).
 */
import { Schema } from "effect"
import { RtstreamId } from "./Ids.js"

/** What a channel carries. */
export const ChannelType = Schema.Literals(["audio", "video"])
export type ChannelType = typeof ChannelType.Type

/** The kinds of device a channel id may name. */
export const ChannelKind = Schema.Literals(["mic", "display", "screen", "system_audio", "camera"])
export type ChannelKind = typeof ChannelKind.Type

/** `kind` or `kind:device`. */
export const ChannelId = Schema.String.check(
  Schema.isPattern(/^(mic|display|screen|system_audio|camera)(:[A-Za-z0-9._@-]{1,64})?$/, {
    message: "expected a channel id like mic:default, display:1, system_audio:default or camera:<device>",
  }),
)
export type ChannelId = typeof ChannelId.Type

/** The kind named by a channel id. */
export const channelKind = (id: ChannelId): ChannelKind => id.split(":", 1)[0] as ChannelKind

/** The media type a kind of device produces. */
export const typeOfKind = (kind: ChannelKind): ChannelType =>
  kind === "mic" || kind === "system_audio" ? "audio" : "video"

/** A channel as a session holds it, after defaults are resolved. */
export const Channel = Schema.Struct({
  channel_id: ChannelId,
  name: Schema.String,
  type: ChannelType,
  store: Schema.Boolean,
  is_primary: Schema.Boolean,
})
export type Channel = typeof Channel.Type

/** A channel as a client sends it to `POST /capture/session/start`; missing fields get defaults. */
export const ChannelInput = Schema.Struct({
  channel_id: ChannelId,
  channel_name: Schema.optionalKey(Schema.String),
  name: Schema.optionalKey(Schema.String),
  type: Schema.optionalKey(ChannelType),
  store: Schema.optionalKey(Schema.Boolean),
  is_primary: Schema.optionalKey(Schema.Boolean),
})
export type ChannelInput = typeof ChannelInput.Type

/** A channel's real-time stream, created when media first arrives. */
export const Rtstream = Schema.Struct({
  rtstream_id: RtstreamId,
  name: Schema.String,
  channel_id: ChannelId,
  media_types: Schema.Array(ChannelType),
})
export type Rtstream = typeof Rtstream.Type
