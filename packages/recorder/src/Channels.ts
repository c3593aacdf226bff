/**
 * Channels: one capturable source each (a microphone, a display, the system audio, a camera), with
 * the id the server knows it by (`mic:default`, `display:1`, `system_audio:default`, `camera:…`),
 * the flags sent when a session starts (`store`, `isPrimary`), and per-channel pause and resume
 * once it is recording.
 */
import type { ChannelInput, ChannelType } from "@capture/protocol"
import type { CaptureSource } from "./FfmpegInputs.js"

/** What a running capture offers a channel: stop and restart producing its segments. */
export interface ChannelControl {
  readonly pause: () => Promise<void>
  readonly resume: () => Promise<void>
}

/** One source the recorder can capture. */
export class Channel {
  /** Persist this channel on the server (`false`: real-time only, never exported). Default true. */
  store = true
  /** The display used for the muxed video; at most one video channel of a session is primary. */
  isPrimary: boolean
  #paused = false
  #control: ChannelControl | undefined

  constructor(
    /** The id on the wire: `kind:device`. */
    readonly id: string,
    /** `audio` or `video`. */
    readonly type: ChannelType,
    /** A readable name (the device's description). */
    readonly name: string,
    /** How ffmpeg captures it. */
    readonly source: CaptureSource,
    options: { readonly isPrimary?: boolean } = {},
  ) {
    this.isPrimary = options.isPrimary ?? false
  }

  /** Whether the channel is paused (a channel paused before the session starts starts paused). */
  get paused(): boolean {
    return this.#paused
  }

  /**
   * Stops producing segments for this channel: its ffmpeg finishes the current segment and exits.
   * Segment indexes stay contiguous across a pause; the wall-clock start of the next segment shows
   * the gap. The server is told (`POST …/pause`, at the end of the last segment) in order with
   * the channel's other pauses and resumes, retried until it answers and kept in the spool until
   * then. Resolves once the channel has stopped and its pause is spooled for the server. A channel
   * paused before the session starts starts paused (the server is told at the start).
   */
  pause(): Promise<void> {
    this.#paused = true
    return this.#control?.pause() ?? Promise.resolve()
  }

  /**
   * Starts producing segments again, at the next index, and tells the server (`POST …/resume`, at
   * the new run's first sample) as `pause()` does. Resolves once capture is running.
   */
  resume(): Promise<void> {
    this.#paused = false
    return this.#control?.resume() ?? Promise.resolve()
  }

  /** Connects the channel to a running capture (done by `CaptureClient`); `undefined` detaches. */
  attach(control: ChannelControl | undefined): void {
    this.#control = control
  }

  /** The channel as `POST /capture/session/start` takes it, every field set. */
  toWire(): ChannelInput {
    return {
      channel_id: this.id,
      channel_name: this.name,
      type: this.type,
      store: this.store,
      is_primary: this.isPrimary,
    }
  }
}

/** The channels of one kind, with the system's default among them. */
export class ChannelGroup {
  /** The default device's channel (`mic:default`, the primary display, …), if there is one. */
  readonly default: Channel | undefined
  readonly #channels: ReadonlyArray<Channel>

  constructor(defaultChannel: Channel | undefined, channels: ReadonlyArray<Channel>) {
    this.default = defaultChannel
    this.#channels = channels
  }

  /** Every channel of this kind, the default first. */
  all(): ReadonlyArray<Channel> {
    return this.#channels
  }
}

/** What `listChannels()` finds, grouped by kind. */
export interface Channels {
  readonly mics: ChannelGroup
  readonly displays: ChannelGroup
  readonly systemAudio: ChannelGroup
  readonly cameras: ChannelGroup
  /** Every channel of every kind. */
  readonly all: () => ReadonlyArray<Channel>
  /** The channel with this id. */
  readonly get: (id: string) => Channel | undefined
}

/** Groups channels; each group's default is the channel `isDefault` picks, else its first. */
export const makeChannels = (groups: {
  readonly mics: ReadonlyArray<Channel>
  readonly displays: ReadonlyArray<Channel>
  readonly systemAudio: ReadonlyArray<Channel>
  readonly cameras: ReadonlyArray<Channel>
}): Channels => {
  const group = (channels: ReadonlyArray<Channel>, isDefault: (channel: Channel) => boolean) =>
    new ChannelGroup(channels.find(isDefault) ?? channels[0], channels)
  const everything = [...groups.displays, ...groups.mics, ...groups.systemAudio, ...groups.cameras]
  return {
    mics: group(groups.mics, (channel) => channel.id === "mic:default"),
    displays: group(groups.displays, (channel) => channel.isPrimary),
    systemAudio: group(groups.systemAudio, (channel) => channel.id === "system_audio:default"),
    cameras: group(groups.cameras, (channel) => channel.id === "camera:default"),
    all: () => everything,
    get: (id) => everything.find((channel) => channel.id === id),
  }
}

/** Makes `device` usable after `kind:` in a channel id (letters, digits, `._@-`, at most 64). */
export const channelIdPart = (device: string): string => {
  const cleaned = device.replace(/[^A-Za-z0-9._@-]+/g, "-").replace(/^-+|-+$/g, "")
  return (cleaned === "" ? "device" : cleaned).slice(0, 64)
}
