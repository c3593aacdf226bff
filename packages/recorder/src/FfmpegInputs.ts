/**
 * ffmpeg command lines for one channel: the input (a device per platform, or a synthetic source),
 * the encoder (H.264 or AAC) and the segment muxer writing keyframe-aligned MPEG-TS segments.
 *
 * Linux (x11grab, PulseAudio) and the synthetic sources are exercised by the tests; the macOS
 * (avfoundation) and Windows (gdigrab, ddagrab, dshow) inputs are built the same way but untested.
 */
import type { ChannelType } from "@capture/protocol"

/** Where a channel's media comes from, as ffmpeg needs to be told. */
export type CaptureSource =
  /** An X11 screen or monitor: `display` is an X display name such as `:0` or `:0.1`. */
  | {
      readonly kind: "x11grab"
      readonly display: string
      readonly x: number
      readonly y: number
      readonly width?: number
      readonly height?: number
    }
  /** A PulseAudio source (a microphone, or a sink's `.monitor` for system audio). */
  | { readonly kind: "pulse"; readonly device: string }
  /** A V4L2 camera (`/dev/video0`). */
  | { readonly kind: "v4l2"; readonly device: string }
  /** macOS: an AVFoundation device index (or `default`) of a screen, camera or microphone. */
  | { readonly kind: "avfoundation"; readonly media: ChannelType; readonly device: string }
  /** Windows: the desktop (or a rectangle of it) through GDI. */
  | {
      readonly kind: "gdigrab"
      readonly x?: number
      readonly y?: number
      readonly width?: number
      readonly height?: number
    }
  /** Windows 8+: one monitor through the Desktop Duplication API (ffmpeg 6+). */
  | { readonly kind: "ddagrab"; readonly outputIndex: number }
  /** Windows: a DirectShow device by name (a camera, a microphone, or a loopback like "Stereo Mix"). */
  | { readonly kind: "dshow"; readonly media: ChannelType; readonly device: string }
  /** A generated source for machines without devices: a test pattern, or a tone. */
  | { readonly kind: "synthetic"; readonly media: "video" }
  | {
      readonly kind: "synthetic"
      readonly media: "audio"
      readonly frequency: number
      readonly beepFactor: number
    }

/** Synthetic video geometry. */
export interface SyntheticVideo {
  readonly width: number
  readonly height: number
  readonly frameRate: number
}

/** What every channel's command shares. */
export interface CaptureSettings {
  /** Target segment length in seconds; keyframes are forced on its multiples. */
  readonly segmentSeconds: number
  /** Frame rate for screen and camera capture. */
  readonly frameRate: number
  /** Geometry of the synthetic test pattern. */
  readonly syntheticVideo: SyntheticVideo
  /** Whether ffmpeg can draw text (`drawtext`): the synthetic pattern then shows the wall clock. */
  readonly drawText: boolean
}

/** Defaults: 2 s segments, 30 fps capture, a 640x360 25 fps test pattern. */
export const defaultCaptureSettings: CaptureSettings = {
  segmentSeconds: 2,
  frameRate: 30,
  syntheticVideo: { width: 640, height: 360, frameRate: 25 },
  drawText: true,
}

/** The media type a source produces. */
export const mediaOf = (source: CaptureSource): ChannelType => {
  switch (source.kind) {
    case "x11grab":
    case "v4l2":
    case "gdigrab":
    case "ddagrab":
      return "video"
    case "pulse":
      return "audio"
    case "avfoundation":
    case "dshow":
    case "synthetic":
      return source.media
  }
}

/**
 * The synthetic test pattern's filter graph: `testsrc2`, the wall clock drawn on it when `drawText`,
 * and a full white frame on every whole second of its timeline (frame numbers divisible by the rate).
 */
export const syntheticVideoGraph = (video: SyntheticVideo, drawText: boolean): string => {
  const fontSize = Math.max(12, Math.round(video.height / 12))
  const clock = drawText
    ? `,drawtext=text='%{localtime}':fontsize=${fontSize}:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=6:x=16:y=16`
    : ""
  const flash = `,drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='eq(mod(n,${video.frameRate}),0)'`
  return `testsrc2=size=${video.width}x${video.height}:rate=${video.frameRate}${clock}${flash}`
}

/** The synthetic tone's source: a sine with a short beep at each whole second of its timeline. */
export const syntheticAudioGraph = (frequency: number, beepFactor: number): string =>
  `sine=frequency=${frequency}:beep_factor=${beepFactor}:sample_rate=48000`

/** The x11grab input URL: `<display>+x,y`. */
const x11Url = (display: string, x: number, y: number): string => `${display}+${x},${y}`

/** ffmpeg input options and `-i` for `source`. */
export const inputArgs = (source: CaptureSource, settings: CaptureSettings): ReadonlyArray<string> => {
  const rate = String(settings.frameRate)
  const size = (width?: number, height?: number): ReadonlyArray<string> =>
    width !== undefined && height !== undefined ? ["-video_size", `${width}x${height}`] : []
  switch (source.kind) {
    case "x11grab":
      return [
        ...["-f", "x11grab", "-thread_queue_size", "512", "-framerate", rate, "-draw_mouse", "1"],
        ...size(source.width, source.height),
        ...["-i", x11Url(source.display, source.x, source.y)],
      ]
    case "pulse":
      return ["-f", "pulse", "-thread_queue_size", "512", "-i", source.device]
    case "v4l2":
      return ["-f", "v4l2", "-thread_queue_size", "512", "-framerate", rate, "-i", source.device]
    case "avfoundation":
      return source.media === "video"
        ? ["-f", "avfoundation", "-capture_cursor", "1", "-framerate", rate, "-i", `${source.device}:none`]
        : ["-f", "avfoundation", "-i", `none:${source.device}`]
    case "gdigrab":
      return [
        ...["-f", "gdigrab", "-framerate", rate, "-draw_mouse", "1"],
        ...(source.x === undefined ? [] : ["-offset_x", String(source.x)]),
        ...(source.y === undefined ? [] : ["-offset_y", String(source.y)]),
        ...size(source.width, source.height),
        ...["-i", "desktop"],
      ]
    case "ddagrab":
      return [
        ...["-f", "lavfi"],
        ...["-i", `ddagrab=output_idx=${source.outputIndex}:framerate=${rate},hwdownload,format=bgra`],
      ]
    case "dshow":
      return [
        ...["-f", "dshow", "-thread_queue_size", "512"],
        ...(source.media === "audio" ? ["-audio_buffer_size", "50"] : ["-framerate", rate]),
        ...["-i", `${source.media}=${source.device}`],
      ]
    case "synthetic":
      return source.media === "video"
        ? ["-re", "-f", "lavfi", "-i", syntheticVideoGraph(settings.syntheticVideo, settings.drawText)]
        : ["-re", "-f", "lavfi", "-i", syntheticAudioGraph(source.frequency, source.beepFactor)]
  }
}

/** The frame rate a video source is encoded at. */
const videoRate = (source: CaptureSource, settings: CaptureSettings): number =>
  source.kind === "synthetic" ? settings.syntheticVideo.frameRate : settings.frameRate

/** Audio is encoded at this rate (AAC). */
export const AUDIO_SAMPLE_RATE = 48_000

/**
 * How far a run's timeline zero lies before its first captured sample. AAC streams open with the
 * encoder's priming frame (1,024 samples, 21.3 ms at 48 kHz): the segments' timeline starts there,
 * so a channel's start time must too, or every audio channel lands that much late against video.
 * H.264 (no B-frames with `zerolatency`) starts at the first frame.
 */
export const timelineLeadMs = (source: CaptureSource): number =>
  mediaOf(source) === "audio" ? AAC_PRIMING_MS : 0

/** The AAC encoder's priming frame: 1,024 samples. */
export const AAC_PRIMING_MS = (1024 / AUDIO_SAMPLE_RATE) * 1_000

/**
 * Encoder options: H.264 (`veryfast`, `zerolatency`, a keyframe forced on every multiple of the
 * segment length so segments split exactly there) for video, AAC for audio. Audio timestamps are
 * counted in samples from the first one: a device's clock (PulseAudio's) jitters and can step
 * back, which would leave non-monotonic timestamps in the segments; its sample count cannot.
 */
export const encodeArgs = (source: CaptureSource, settings: CaptureSettings): ReadonlyArray<string> => {
  if (mediaOf(source) === "audio") {
    return [
      ...["-map", "0:a:0", "-vn", "-af", "asetpts=STARTPTS+N/SR/TB"],
      ...["-c:a", "aac", "-b:a", "128k", "-ar", String(AUDIO_SAMPLE_RATE)],
    ]
  }
  const gop = String(Math.max(1, Math.round(videoRate(source, settings) * settings.segmentSeconds)))
  return [
    ...["-map", "0:v:0", "-an", "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2,format=yuv420p"],
    ...["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p"],
    ...["-g", gop, "-keyint_min", gop, "-sc_threshold", "0"],
    ...["-force_key_frames", `expr:gte(t,n_forced*${settings.segmentSeconds})`],
  ]
}

/** Where one ffmpeg run writes: its segment file pattern (`…/%08d.ts`), first index and list file. */
export interface SegmentOutput {
  /** A path with `%08d` where the index goes; any other `%` doubled. */
  readonly pattern: string
  readonly startIndex: number
  readonly listFile: string
}

/**
 * The segment muxer: MPEG-TS files of `segmentSeconds`, timestamps continuous across segments
 * (`-reset_timestamps 0`), each finished segment appended to a CSV list (`name,start,end` seconds).
 */
export const segmentArgs = (output: SegmentOutput, settings: CaptureSettings): ReadonlyArray<string> => [
  ...["-f", "segment", "-segment_format", "mpegts", "-segment_time", String(settings.segmentSeconds)],
  ...["-reset_timestamps", "0", "-segment_start_number", String(output.startIndex)],
  ...["-segment_list", output.listFile, "-segment_list_type", "csv", "-segment_list_flags", "+live"],
  output.pattern,
]

/**
 * The whole command line for one channel. Logs at `info` without stats: the recorder reads the
 * input's start time, "Press [q] to stop" and "Opening '…' for writing" lines from stderr.
 */
export const captureArgs = (
  source: CaptureSource,
  output: SegmentOutput,
  settings: CaptureSettings,
): ReadonlyArray<string> => [
  ...["-hide_banner", "-nostats", "-loglevel", "info", "-y"],
  ...inputArgs(source, settings),
  ...encodeArgs(source, settings),
  ...segmentArgs(output, settings),
]

/** Escapes `%` in a directory for ffmpeg's `%08d` pattern. */
export const segmentPattern = (directory: string, separator: string): string =>
  `${directory.replaceAll("%", "%%")}${separator}%08d.ts`
