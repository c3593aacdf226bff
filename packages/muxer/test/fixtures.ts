/**
 * Test media made with ffmpeg: channels recorded against one wall clock, cut into ~2 s MPEG-TS
 * segments with their wall-clock start times, as the recorder would; and measurements of an
 * export (flashes, beeps, tones) to check sync and the mix.
 */
import { execFile } from "node:child_process"
import { mkdir, readdir, readFile } from "node:fs/promises"
import { join } from "node:path"
import { promisify } from "node:util"
import { type MediaStore, type SegmentInput, sha256Hex } from "@capture/media"
import type { SessionId } from "@capture/protocol"
import { flashTimes, metadataLines } from "@capture/testkit"

const exec = promisify(execFile)
const ffmpeg = process.env.FFMPEG_PATH ?? "ffmpeg"
const ffprobe = process.env.FFPROBE_PATH ?? "ffprobe"

export interface Segment {
  readonly index: number
  readonly data: Uint8Array
  readonly startMs: number
  readonly durationMs: number
}

export interface ChannelMedia {
  readonly channelId: string
  readonly segments: ReadonlyArray<Segment>
}

/** A display: a test pattern with a white flash on each wall-clock second. */
export const display = (
  channelId: string,
  options: { readonly offsetMs: number; readonly seconds: number; readonly pattern?: string },
) => ({
  channelId,
  offsetMs: options.offsetMs,
  args: [
    ...["-f", "lavfi", "-i", `${options.pattern ?? "testsrc2"}=s=320x180:r=30:d=${options.seconds}`],
    ...["-vf", `drawbox=c=white:t=fill:enable='lt(mod(t+${options.offsetMs / 1000}\\,1)\\,0.033)'`],
    ...["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "60", "-keyint_min", "60"],
    ...["-sc_threshold", "0"],
  ],
  type: "video" as const,
})

/** An audio channel: a 50 ms beep at `hz` on each wall-clock second, silence between. */
export const beeper = (
  channelId: string,
  options: { readonly offsetMs: number; readonly seconds: number; readonly hz: number },
) => {
  const phase = (((options.offsetMs / 1000) % 1) + 1) % 1
  return {
    channelId,
    offsetMs: options.offsetMs,
    args: [
      ...[
        "-f",
        "lavfi",
        "-i",
        `aevalsrc='if(lt(mod(t+${phase}\\,1)\\,0.05)\\,0.5*sin(2*PI*${options.hz}*t)\\,0)':s=48000:d=${options.seconds}`,
      ],
      ...["-c:a", "aac", "-b:a", "96k"],
    ],
    type: "audio" as const,
  }
}

type Source = ReturnType<typeof display> | ReturnType<typeof beeper>

const firstPts = async (file: string, type: "video" | "audio"): Promise<number> => {
  const { stdout } = await exec(ffprobe, [
    ...["-v", "error", "-select_streams", type === "video" ? "v:0" : "a:0", "-read_intervals", "%+#8"],
    ...["-show_entries", "packet=pts_time", "-of", "csv=p=0", file],
  ])
  return Math.min(
    ...stdout
      .split("\n")
      .map((l) => Number.parseFloat(l))
      .filter(Number.isFinite),
  )
}

const durationOf = async (file: string): Promise<number> => {
  const { stdout } = await exec(ffprobe, [
    "-v",
    "error",
    "-show_entries",
    "format=duration",
    "-of",
    "csv=p=0",
    file,
  ])
  return Number(stdout.trim())
}

/**
 * Records `source` into ~2 s segments under `dir`; `wallMs` is the wall clock at the timeline's
 * zero (a channel with `offsetMs` starts that much later).
 */
export const record = async (dir: string, source: Source, wallMs: number): Promise<ChannelMedia> => {
  const out = join(dir, source.channelId.replace(/[^a-z0-9]/gi, "_"))
  await mkdir(out, { recursive: true })
  await exec(ffmpeg, [
    ...["-hide_banner", "-v", "error", "-y", ...source.args],
    ...["-f", "segment", "-segment_time", "2", "-segment_format", "mpegts", join(out, "%03d.ts")],
  ])
  const all = (await readdir(out)).filter((f) => f.endsWith(".ts")).sort()
  const allStarts = await Promise.all(all.map((f) => firstPts(join(out, f), source.type)))
  // The segment muxer can leave a last sliver without timestamps: the recorder would not send it.
  const files = all.filter((_, i) => Number.isFinite(allStarts[i]))
  const starts = allStarts.filter(Number.isFinite)
  // The first audio packet is the encoder's priming: the source's zero is one AAC frame later.
  const zero = (starts[0] as number) + (source.type === "audio" ? 1024 / 48000 : 0)
  const startMs = starts.map((start) => Math.round(wallMs + source.offsetMs + (start - zero) * 1000))
  // ffprobe's duration of an audio-only TS is rough: a segment lasts until the next one starts.
  const probed = Math.round((await durationOf(join(out, files.at(-1) as string))) * 1000)
  const lastDuration = Number.isFinite(probed) ? probed : 0
  const segments = await Promise.all(
    files.map(async (f, index) => ({
      index,
      data: new Uint8Array(await readFile(join(out, f))),
      startMs: startMs[index] as number,
      durationMs:
        index + 1 < files.length ? (startMs[index + 1] as number) - (startMs[index] as number) : lastDuration,
    })),
  )
  return { channelId: source.channelId, segments }
}

/** The record the recorder would store for a segment. */
export const segmentInput = (
  sessionId: SessionId,
  channel: ChannelMedia,
  segment: Segment,
  sha256 = sha256Hex(segment.data),
): SegmentInput => ({
  session_id: sessionId,
  channel_id: channel.channelId,
  index: segment.index,
  start_ms: segment.startMs,
  duration_ms: segment.durationMs,
  sha256,
  final: segment.index === channel.segments.length - 1,
  container: "mpegts",
})

/** Puts segments through the media store. */
export const upload = async (
  media: MediaStore,
  sessionId: SessionId,
  channels: ReadonlyArray<ChannelMedia>,
  which: (segment: Segment, channel: ChannelMedia) => boolean = () => true,
): Promise<void> => {
  for (const channel of channels)
    for (const segment of channel.segments)
      if (which(segment, channel)) await media.put(segmentInput(sessionId, channel, segment), segment.data)
}

/** Times (s, from the file's start) of frames much brighter than the pattern: the flashes. */
export const flashes = (file: string): Promise<number[]> => flashTimes(ffmpeg, ["-i", file])

/** Onset times (s) of beeps at `hz`: 2 ms windows of band-passed audio crossing -30 dB. */
export const beeps = async (file: string, hz: number): Promise<number[]> => {
  const { stdout } = await exec(
    ffmpeg,
    [
      ...["-hide_banner", "-v", "error", "-i", file, "-vn", "-af"],
      `bandpass=f=${hz}:width_type=h:w=100,bandpass=f=${hz}:width_type=h:w=100,asetnsamples=n=96,astats=metadata=1:reset=1,ametadata=print:key=lavfi.astats.Overall.RMS_level:file=-`,
      ...["-f", "null", "-"],
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  )
  const onsets: number[] = []
  let on = false
  for (const { t, v } of metadataLines(stdout, "lavfi.astats.Overall.RMS_level")) {
    if (v > -30 && !on) {
      onsets.push(t)
      on = true
    } else if (v < -40) on = false
  }
  return onsets
}

/** Mean volume (dB) of the band around `hz`. */
export const toneLevel = async (file: string, hz: number): Promise<number> => {
  const { stderr } = await exec(ffmpeg, [
    ...[
      "-hide_banner",
      "-i",
      file,
      "-vn",
      "-af",
      `bandpass=f=${hz}:width_type=h:w=60,volumedetect`,
      "-f",
      "null",
      "-",
    ],
  ])
  const match = /max_volume: ([-\d.]+) dB/.exec(stderr)
  return match === null ? -200 : Number(match[1])
}

/** Streams and format of a media file. */
export const probe = async (
  file: string,
): Promise<{
  streams: Array<{ codec_type: string; codec_name: string; duration?: string }>
  format: { duration: string }
}> => {
  const { stdout } = await exec(ffprobe, [
    "-v",
    "error",
    "-show_streams",
    "-show_format",
    "-of",
    "json",
    file,
  ])
  return JSON.parse(stdout)
}

/** Frame count and first/last time of a stream, by decoding. */
export const streamSpan = async (file: string, type: "v" | "a"): Promise<{ start: number; end: number }> => {
  const { stdout } = await exec(
    ffprobe,
    [
      "-v",
      "error",
      "-select_streams",
      `${type}:0`,
      "-show_entries",
      "packet=pts_time,duration_time",
      "-of",
      "csv=p=0",
      file,
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  )
  const rows = stdout
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => l.split(",").map(Number.parseFloat) as [number, number])
    .filter((r) => Number.isFinite(r[0]))
  return {
    start: Math.min(...rows.map((r) => r[0])),
    end: Math.max(...rows.map((r) => r[0] + (Number.isFinite(r[1]) ? r[1] : 0))),
  }
}
