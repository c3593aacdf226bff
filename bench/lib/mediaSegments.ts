/**
 * Real MPEG-TS segments for bench:ingest, encoded once with the recorder's own encoder and segment
 * muxer arguments (`encodeArgs`, `segmentArgs`, 2 s segments) from generated sources: a moving
 * 1280x720 30 fps test pattern with noise (a busy screen) for `display:1`, and tones for
 * `mic:default` and `system_audio:default`. Uploads reuse the bytes under new indexes.
 */
import { createHash } from "node:crypto"
import { mkdir, readFile } from "node:fs/promises"
import { basename, join, sep } from "node:path"
import {
  type CaptureSource,
  defaultCaptureSettings,
  encodeArgs,
  runTool,
  segmentArgs,
  segmentPattern,
} from "@capture/recorder"

/** One segment's bytes and what its upload headers say. */
export interface SegmentBody {
  readonly bytes: Buffer
  readonly sha256: string
  readonly durationMs: number
}

/** A channel of the benchmark's sessions, with the segments its uploads cycle through. */
export interface ChannelMedia {
  readonly channelId: string
  readonly type: "video" | "audio"
  /** How its segments were made. */
  readonly description: string
  readonly segments: ReadonlyArray<SegmentBody>
}

const TS_PACKET = 188

/** Whole 188-byte packets, each starting with 0x47 (the gateway also wants the PAT ffmpeg writes first). */
const isMpegTs = (bytes: Buffer) => {
  if (bytes.length === 0 || bytes.length % TS_PACKET !== 0) return false
  for (let offset = 0; offset < bytes.length; offset += TS_PACKET) if (bytes[offset] !== 0x47) return false
  return true
}

/** Encodes `count` segments of one channel into `dir` and reads them back. */
const encodeChannel = async (
  ffmpeg: string,
  dir: string,
  channel: {
    readonly channelId: string
    readonly input: ReadonlyArray<string>
    /** The source the recorder would capture this from: it picks the encoder arguments. */
    readonly source: CaptureSource
    readonly extra: ReadonlyArray<string>
    readonly description: string
  },
  count: number,
): Promise<ChannelMedia> => {
  const settings = defaultCaptureSettings
  const folder = join(dir, channel.channelId.replace(/[^a-z0-9]/gi, "_"))
  const listFile = join(dir, `${basename(folder)}.csv`)
  await mkdir(folder, { recursive: true })
  // One segment more than needed: the last one a run writes may be short.
  const seconds = (count + 1) * settings.segmentSeconds
  const result = await runTool(
    ffmpeg,
    [
      ...["-hide_banner", "-nostats", "-loglevel", "error", "-y"],
      ...channel.input,
      ...["-t", String(seconds)],
      ...encodeArgs(channel.source, settings),
      ...channel.extra,
      ...segmentArgs({ pattern: segmentPattern(folder, sep), startIndex: 0, listFile }, settings),
    ],
    { timeoutMs: 180_000 },
  )
  if (result.code !== 0) throw new Error(`ffmpeg could not encode ${channel.channelId}: ${result.stderr}`)
  const entries = (await readFile(listFile, "utf8"))
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      const [name = "", start = "", end = ""] = line.split(",")
      return {
        file: join(folder, basename(name)),
        durationMs: Math.round((Number(end) - Number(start)) * 1000),
      }
    })
    .slice(0, count)
  if (entries.length < count)
    throw new Error(`ffmpeg wrote ${entries.length} segments of ${channel.channelId}, not ${count}`)
  const segments = await Promise.all(
    entries.map(async ({ file, durationMs }) => {
      const bytes = await readFile(file)
      if (!isMpegTs(bytes)) throw new Error(`${file} is not MPEG-TS`)
      return { bytes, sha256: createHash("sha256").update(bytes).digest("hex"), durationMs }
    }),
  )
  const type = channel.source.kind === "pulse" ? "audio" : "video"
  return { channelId: channel.channelId, type, description: channel.description, segments }
}

/**
 * The three channels of a session: `count` segments each. `videoKbps` caps the display's bitrate
 * (the recorder itself encodes at x264's default quality, whatever the bitrate).
 */
export const makeSessionMedia = async (options: {
  readonly ffmpeg: string
  readonly dir: string
  readonly count: number
  readonly videoKbps?: number
}): Promise<ReadonlyArray<ChannelMedia>> => {
  const { ffmpeg, dir, count, videoKbps } = options
  const screen: CaptureSource = { kind: "x11grab", display: ":0", x: 0, y: 0, width: 1280, height: 720 }
  const microphone: CaptureSource = { kind: "pulse", device: "default" }
  const rate = defaultCaptureSettings.frameRate
  const tone = (frequency: number, beepFactor: number) => [
    "-f",
    "lavfi",
    "-i",
    `sine=frequency=${frequency}:beep_factor=${beepFactor}:sample_rate=48000`,
  ]
  return Promise.all([
    encodeChannel(
      ffmpeg,
      dir,
      {
        channelId: "display:1",
        input: ["-f", "lavfi", "-i", `testsrc2=size=1280x720:rate=${rate}`],
        source: screen,
        extra:
          videoKbps === undefined
            ? []
            : ["-b:v", `${videoKbps}k`, "-maxrate", `${videoKbps}k`, "-bufsize", `${2 * videoKbps}k`],
        description: `testsrc2 1280x720 ${rate} fps, the recorder's H.264 settings${videoKbps === undefined ? "" : ` capped at ${videoKbps} kbit/s`}`,
      },
      count,
    ),
    encodeChannel(
      ffmpeg,
      dir,
      {
        channelId: "mic:default",
        input: tone(440, 4),
        source: microphone,
        extra: [],
        description: "440 Hz tone, the recorder's AAC settings",
      },
      count,
    ),
    encodeChannel(
      ffmpeg,
      dir,
      {
        channelId: "system_audio:default",
        input: tone(660, 3),
        source: microphone,
        extra: [],
        description: "660 Hz tone, the recorder's AAC settings",
      },
      count,
    ),
  ])
}
