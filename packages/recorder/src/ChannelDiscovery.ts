/**
 * Finding the channels of this machine.
 *
 * - Linux: one `display:N` per monitor of `$DISPLAY` (`xrandr --listmonitors`; else one per X
 *   screen from `xdpyinfo`; else the whole screen), PulseAudio sources from `pactl` (`mic:default`
 *   is the default source, other non-monitor sources are `mic:<name>`), the default sink's monitor
 *   as `system_audio:default`, V4L2 cameras from `/dev/video*`.
 * - macOS / Windows (untested): the devices ffmpeg lists for AVFoundation / DirectShow.
 * - Synthetic (`synthetic: true`): a test pattern as `display:1` and tones as `mic:default` and
 *   `system_audio:default`, for machines without devices.
 */
import { readdir } from "node:fs/promises"
import { Data } from "effect"
import { Channel, type Channels, channelIdPart, makeChannels } from "./Channels.js"
import { runTool } from "./Ffmpeg.js"
import {
  isLoopbackName,
  parseAvfoundationDevices,
  parseDshowDevices,
  parsePactlInfo,
  parsePactlSources,
  parseXdpyinfoScreens,
  parseXrandrMonitors,
  type X11Monitor,
} from "./internal/deviceLists.js"

/** A device a capture needs cannot be reached (no X display, no PulseAudio server, …). */
export class PermissionDenied extends Data.TaggedError("PermissionDenied")<{
  readonly permission: Permission
  readonly message: string
}> {}

/** The permissions a recorder asks for. */
export type Permission = "microphone" | "screen_capture"

/** Where and how to look. */
export interface DiscoveryOptions {
  readonly platform?: NodeJS.Platform
  /** The environment the platform tools see (`DISPLAY`, `PULSE_RUNTIME_PATH`, …). */
  readonly env?: NodeJS.ProcessEnv
  /** The ffmpeg binary, for macOS and Windows device lists. */
  readonly ffmpegPath?: string
}

/** The synthetic channels: a test pattern and two tones, beeping and flashing on whole seconds. */
export const syntheticChannels = (): Channels =>
  makeChannels({
    displays: [
      new Channel(
        "display:1",
        "video",
        "Synthetic display (test pattern)",
        { kind: "synthetic", media: "video" },
        {
          isPrimary: true,
        },
      ),
    ],
    mics: [
      new Channel("mic:default", "audio", "Synthetic microphone (440 Hz tone)", {
        kind: "synthetic",
        media: "audio",
        frequency: 440,
        beepFactor: 4,
      }),
    ],
    systemAudio: [
      new Channel("system_audio:default", "audio", "Synthetic system audio (660 Hz tone)", {
        kind: "synthetic",
        media: "audio",
        frequency: 660,
        beepFactor: 3,
      }),
    ],
    cameras: [],
  })

/** The channels of this machine. Tools that are missing or fail just contribute no channels. */
export const discoverChannels = async (options: DiscoveryOptions = {}): Promise<Channels> => {
  const platform = options.platform ?? process.platform
  switch (platform) {
    case "linux":
      return discoverLinux(options.env ?? process.env)
    case "darwin":
      return discoverMac(options.ffmpegPath ?? "ffmpeg")
    case "win32":
      return discoverWindows(options.ffmpegPath ?? "ffmpeg")
    default:
      return makeChannels({ mics: [], displays: [], systemAudio: [], cameras: [] })
  }
}

/** The monitors of `display`: xrandr's, else xdpyinfo's screens, else one whole-screen entry. */
export const listX11Monitors = async (
  display: string,
  env: NodeJS.ProcessEnv,
): Promise<ReadonlyArray<X11Monitor>> => {
  const toolEnv = { ...env, DISPLAY: display }
  const xrandr = await runTool("xrandr", ["--listmonitors"], { env: toolEnv, timeoutMs: 5_000 })
  const monitors = xrandr.code === 0 ? parseXrandrMonitors(xrandr.stdout) : []
  if (monitors.length > 0) return monitors
  const xdpyinfo = await runTool("xdpyinfo", [], { env: toolEnv, timeoutMs: 5_000 })
  const screens = xdpyinfo.code === 0 ? parseXdpyinfoScreens(xdpyinfo.stdout, display) : []
  if (screens.length > 0) return screens
  return [{ index: 0, name: "screen", primary: true, width: 0, height: 0, x: 0, y: 0 }]
}

/** The PulseAudio server's default sink and source, and its sources; undefined when unreachable. */
export const pulseAudioState = async (
  env: NodeJS.ProcessEnv,
): Promise<
  | {
      readonly defaultSink?: string
      readonly defaultSource?: string
      readonly sources: ReadonlyArray<string>
    }
  | undefined
> => {
  const info = await runTool("pactl", ["info"], { env, timeoutMs: 5_000 })
  if (info.code !== 0) return undefined
  const sources = await runTool("pactl", ["list", "short", "sources"], { env, timeoutMs: 5_000 })
  return {
    ...parsePactlInfo(info.stdout),
    sources: sources.code === 0 ? parsePactlSources(sources.stdout) : [],
  }
}

const discoverLinux = async (env: NodeJS.ProcessEnv): Promise<Channels> => {
  const display = env.DISPLAY
  const monitors = display ? await listX11Monitors(display, env) : []
  const primaryIndex = Math.max(
    0,
    monitors.findIndex((monitor) => monitor.primary),
  )
  const displays = monitors.map((monitor, position) => {
    const size = monitor.width > 0 ? { width: monitor.width, height: monitor.height } : {}
    const description =
      monitor.width > 0
        ? `${monitor.name} (${monitor.width}x${monitor.height}+${monitor.x}+${monitor.y})`
        : "screen"
    return new Channel(
      `display:${position + 1}`,
      "video",
      `Display ${position + 1}: ${description}`,
      {
        kind: "x11grab",
        display: monitor.display ?? (display as string),
        x: monitor.x,
        y: monitor.y,
        ...size,
      },
      { isPrimary: position === primaryIndex },
    )
  })

  const pulse = await pulseAudioState(env)
  const mics: Channel[] = []
  const systemAudio: Channel[] = []
  if (pulse !== undefined) {
    const inputs = pulse.sources.filter((name) => !name.endsWith(".monitor"))
    const defaultMic =
      pulse.defaultSource !== undefined && inputs.includes(pulse.defaultSource)
        ? pulse.defaultSource
        : inputs[0]
    if (defaultMic !== undefined) {
      mics.push(
        new Channel("mic:default", "audio", `Default microphone (${defaultMic})`, pulseSource(defaultMic)),
      )
    }
    for (const name of inputs) {
      if (name !== defaultMic)
        mics.push(new Channel(`mic:${channelIdPart(name)}`, "audio", name, pulseSource(name)))
    }
    const monitor = pulse.defaultSink === undefined ? undefined : `${pulse.defaultSink}.monitor`
    if (monitor !== undefined && pulse.sources.includes(monitor)) {
      systemAudio.push(
        new Channel(
          "system_audio:default",
          "audio",
          `System audio (${pulse.defaultSink})`,
          pulseSource(monitor),
        ),
      )
    }
  }

  const cameras = (await videoDevices()).map(
    (device, position) =>
      new Channel(position === 0 ? "camera:default" : `camera:${device}`, "video", `/dev/${device}`, {
        kind: "v4l2",
        device: `/dev/${device}`,
      }),
  )
  return makeChannels({ mics, displays, systemAudio, cameras })
}

const pulseSource = (device: string) => ({ kind: "pulse", device }) as const

const videoDevices = async (): Promise<ReadonlyArray<string>> => {
  try {
    const names = await readdir("/dev")
    return names
      .filter((name) => /^video\d+$/.test(name))
      .sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)))
  } catch {
    return []
  }
}

const discoverMac = async (ffmpegPath: string): Promise<Channels> => {
  const listed = await runTool(ffmpegPath, [
    "-hide_banner",
    "-f",
    "avfoundation",
    "-list_devices",
    "true",
    "-i",
    "",
  ])
  const devices = parseAvfoundationDevices(listed.stderr)
  const screens = devices.video.filter((device) => /^Capture screen/i.test(device.name))
  const cams = devices.video.filter((device) => !/^Capture screen/i.test(device.name))
  const displays = screens.map(
    (device, position) =>
      new Channel(
        `display:${position + 1}`,
        "video",
        device.name,
        { kind: "avfoundation", media: "video", device: String(device.index) },
        { isPrimary: position === 0 },
      ),
  )
  const cameras = cams.map(
    (device, position) =>
      new Channel(
        position === 0 ? "camera:default" : `camera:${channelIdPart(device.name)}`,
        "video",
        device.name,
        {
          kind: "avfoundation",
          media: "video",
          device: String(device.index),
        },
      ),
  )
  const inputs = devices.audio.filter((device) => !isLoopbackName(device.name))
  const mics = [
    ...(inputs.length > 0
      ? [
          new Channel("mic:default", "audio", "Default microphone", {
            kind: "avfoundation",
            media: "audio",
            device: "default",
          } as const),
        ]
      : []),
    ...inputs.map(
      (device) =>
        new Channel(`mic:${channelIdPart(device.name)}`, "audio", device.name, {
          kind: "avfoundation",
          media: "audio",
          device: String(device.index),
        }),
    ),
  ]
  const loopback = devices.audio.find((device) => isLoopbackName(device.name))
  const systemAudio =
    loopback === undefined
      ? []
      : [
          new Channel("system_audio:default", "audio", `System audio (${loopback.name})`, {
            kind: "avfoundation",
            media: "audio",
            device: String(loopback.index),
          }),
        ]
  return makeChannels({ mics, displays, systemAudio, cameras })
}

const discoverWindows = async (ffmpegPath: string): Promise<Channels> => {
  const listed = await runTool(ffmpegPath, [
    "-hide_banner",
    "-f",
    "dshow",
    "-list_devices",
    "true",
    "-i",
    "dummy",
  ])
  const devices = parseDshowDevices(listed.stderr)
  const displays = [new Channel("display:1", "video", "Desktop", { kind: "gdigrab" }, { isPrimary: true })]
  const cameras = devices.video.map(
    (name, position) =>
      new Channel(position === 0 ? "camera:default" : `camera:${channelIdPart(name)}`, "video", name, {
        kind: "dshow",
        media: "video",
        device: name,
      }),
  )
  const inputs = devices.audio.filter((name) => !isLoopbackName(name))
  const mics = inputs.map(
    (name, position) =>
      new Channel(position === 0 ? "mic:default" : `mic:${channelIdPart(name)}`, "audio", name, {
        kind: "dshow",
        media: "audio",
        device: name,
      }),
  )
  const loopback = devices.audio.find(isLoopbackName)
  const systemAudio =
    loopback === undefined
      ? []
      : [
          new Channel("system_audio:default", "audio", `System audio (${loopback})`, {
            kind: "dshow",
            media: "audio",
            device: loopback,
          }),
        ]
  return makeChannels({ mics, displays, systemAudio, cameras })
}

/**
 * Checks that a permission's devices are reachable. Linux: `screen_capture` needs an X display
 * that answers (`xdpyinfo`), `microphone` a PulseAudio server (`pactl info`). macOS and Windows
 * show their own consent prompts when ffmpeg first opens a device, so this resolves there.
 */
export const checkPermission = async (
  permission: Permission,
  options: DiscoveryOptions = {},
): Promise<void> => {
  const platform = options.platform ?? process.platform
  if (platform !== "linux") return
  const env = options.env ?? process.env
  if (permission === "screen_capture") {
    if (!env.DISPLAY) {
      throw new PermissionDenied({
        permission,
        message: "screen capture needs an X display: DISPLAY is not set",
      })
    }
    const probe = await runTool("xdpyinfo", [], { env, timeoutMs: 5_000 })
    if (probe.code !== 0) {
      throw new PermissionDenied({
        permission,
        message: `X display ${env.DISPLAY} is not reachable (xdpyinfo: ${firstLine(probe.stderr) || "not installed"})`,
      })
    }
    return
  }
  const info = await runTool("pactl", ["info"], { env, timeoutMs: 5_000 })
  if (info.code !== 0) {
    throw new PermissionDenied({
      permission,
      message: `no PulseAudio server reachable (pactl info: ${firstLine(info.stderr) || "pactl not installed"})`,
    })
  }
}

const firstLine = (text: string): string => text.trim().split("\n")[0] ?? ""
