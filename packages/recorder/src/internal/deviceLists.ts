/**
 * Parsers for what the platform tools print about devices: `xrandr --listmonitors`, `xdpyinfo`,
 * `pactl info` and `pactl list short sources`, and ffmpeg's `-list_devices` output for
 * AVFoundation (macOS) and DirectShow (Windows). Pure, so they are tested on captured output.
 */

/** One X11 monitor (or screen): its geometry inside the X screen. */
export interface X11Monitor {
  readonly index: number
  readonly name: string
  readonly primary: boolean
  readonly width: number
  readonly height: number
  readonly x: number
  readonly y: number
  /** An X display name for this monitor's screen when it differs from `$DISPLAY` (xdpyinfo). */
  readonly display?: string
}

/** `xrandr --listmonitors`: ` 0: +*eDP-1 1920/344x1080/194+0+0  eDP-1`. */
export const parseXrandrMonitors = (output: string): ReadonlyArray<X11Monitor> => {
  const monitors: X11Monitor[] = []
  for (const line of output.split("\n")) {
    const match = /^\s*(\d+):\s+([+*]*)(\S+)\s+(\d+)\/\d+x(\d+)\/\d+([+-]\d+)([+-]\d+)/.exec(line)
    if (match === null) continue
    monitors.push({
      index: Number(match[1]),
      primary: (match[2] ?? "").includes("*"),
      name: match[3] ?? "",
      width: Number(match[4]),
      height: Number(match[5]),
      x: Number(match[6]),
      y: Number(match[7]),
    })
  }
  return monitors
}

/** `xdpyinfo`: one entry per X screen (`screen #1:` … `dimensions: 1280x720 pixels`). */
export const parseXdpyinfoScreens = (output: string, display: string): ReadonlyArray<X11Monitor> => {
  const base = display.replace(/\.\d+$/, "")
  const screens: X11Monitor[] = []
  let current: number | undefined
  for (const line of output.split("\n")) {
    const screen = /^screen #(\d+):/.exec(line)
    if (screen !== null) {
      current = Number(screen[1])
      continue
    }
    const dimensions = /^\s+dimensions:\s+(\d+)x(\d+) pixels/.exec(line)
    if (dimensions !== null && current !== undefined) {
      screens.push({
        index: current,
        name: `screen ${current}`,
        primary: current === 0,
        width: Number(dimensions[1]),
        height: Number(dimensions[2]),
        x: 0,
        y: 0,
        display: `${base}.${current}`,
      })
    }
  }
  return screens
}

/** `pactl info`: the default sink and source names. */
export const parsePactlInfo = (
  output: string,
): { readonly defaultSink?: string; readonly defaultSource?: string } => {
  const sink = /^Default Sink:\s*(\S+)/m.exec(output)?.[1]
  const source = /^Default Source:\s*(\S+)/m.exec(output)?.[1]
  return {
    ...(sink === undefined ? {} : { defaultSink: sink }),
    ...(source === undefined ? {} : { defaultSource: source }),
  }
}

/** `pactl list short sources`: the source names (tab-separated, name second). */
export const parsePactlSources = (output: string): ReadonlyArray<string> =>
  output
    .split("\n")
    .map((line) => line.split("\t")[1]?.trim())
    .filter((name): name is string => name !== undefined && name !== "")

/** A device ffmpeg lists: its index (AVFoundation) and name. */
export interface ListedDevice {
  readonly index: number
  readonly name: string
}

/** ffmpeg `-f avfoundation -list_devices true -i ""`: video and audio devices with their indexes. */
export const parseAvfoundationDevices = (
  output: string,
): { readonly video: ReadonlyArray<ListedDevice>; readonly audio: ReadonlyArray<ListedDevice> } => {
  const video: ListedDevice[] = []
  const audio: ListedDevice[] = []
  let section: ListedDevice[] | undefined
  for (const line of output.split("\n")) {
    if (/AVFoundation video devices/.test(line)) section = video
    else if (/AVFoundation audio devices/.test(line)) section = audio
    else {
      const match = /\]\s*\[(\d+)\]\s+(.+?)\s*$/.exec(line)
      if (match !== null && section !== undefined)
        section.push({ index: Number(match[1]), name: match[2] ?? "" })
    }
  }
  return { video, audio }
}

/**
 * ffmpeg `-f dshow -list_devices true -i dummy`: device names, in either layout ffmpeg has used
 * (`"Name" (video)` per line since 5.0; section headers before).
 */
export const parseDshowDevices = (
  output: string,
): { readonly video: ReadonlyArray<string>; readonly audio: ReadonlyArray<string> } => {
  const video: string[] = []
  const audio: string[] = []
  let section: string[] | undefined
  for (const line of output.split("\n")) {
    if (/DirectShow video devices/.test(line)) section = video
    else if (/DirectShow audio devices/.test(line)) section = audio
    else if (/Alternative name/.test(line)) continue
    else {
      const tagged = /\]\s*"(.+)"\s+\((video|audio|none)\)/.exec(line)
      if (tagged !== null) {
        if (tagged[2] === "video") video.push(tagged[1] ?? "")
        if (tagged[2] === "audio") audio.push(tagged[1] ?? "")
        continue
      }
      const plain = /\]\s*"(.+)"\s*$/.exec(line)
      if (plain !== null && section !== undefined) section.push(plain[1] ?? "")
    }
  }
  return { video, audio }
}

/** Names that loopback (system audio) devices go by on macOS and Windows. */
export const isLoopbackName = (name: string): boolean =>
  /blackhole|soundflower|loopback|stereo mix|what u hear|virtual-audio-capturer|wave out mix/i.test(name)
