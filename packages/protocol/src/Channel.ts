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

/**
 * The category VideoDB's SDK files an rtstream under: `session.getRTStream("mic" | "screen" |
 * "system_audio")` matches an rtstream's `channel_id` exactly, so it carries this, not the
 * capture channel's id. Displays (`display:N`, older clients' `screen:N`) are `screen`.
 */
export const RtstreamCategory = Schema.Literals(["mic", "screen", "system_audio", "camera"])
export type RtstreamCategory = typeof RtstreamCategory.Type

/** The category of the rtstream that carries a capture channel. */
export const rtstreamCategoryOf = (channel: ChannelId): RtstreamCategory => {
  const kind = channelKind(channel)
  return kind === "display" ? "screen" : kind
}

/**
 * A channel's real-time stream as `SessionActivated` stores it, one per started channel, made
 * when media first arrives. `name` is the capture channel it carries (`mic:default`: the device,
 * the WebSocket's `rtstream_name`); `channel_id` is its category (`mic`). Histories stored before
 * categories held the channel id in `channel_id` as well: the fold derives the category from
 * `name`, which has always been the channel id.
 */
export const Rtstream = Schema.Struct({
  rtstream_id: RtstreamId,
  name: ChannelId,
  /** The category (`mic`, `screen`, …); the capture channel id in older histories. */
  channel_id: ChannelId,
  media_types: Schema.Array(ChannelType),
})
export type Rtstream = typeof Rtstream.Type
