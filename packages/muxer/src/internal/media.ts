/**
 * The ffmpeg work behind each piece: remux one MPEG-TS segment to a fragment (stream copy), mix
 * one window of audio from several channels to AAC, and make black / silent fillers for gaps.
 * Every function takes bytes and returns bytes; nothing here knows about NATS.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { FfmpegTools } from "@capture/binaries"
import { aacFragment, adtsFrames, type FragmentTiming, fragmentTiming, splitFragmented } from "./mp4.js"
import { run } from "./process.js"
import { NotRemuxable, remuxTs } from "./tsRemux.js"

/** The mixed audio of every export: AAC-LC, 48 kHz, stereo. */
export const MIX_RATE = 48_000
export const AAC_FRAME = 1024
/** Samples encoded before a window (and dropped) so its first kept frame is encoded in context. */
export const PRE_ROLL = 2 * AAC_FRAME
export const VIDEO_TIMESCALE = 90_000

const FRAGMENTED = ["-f", "mp4", "-movflags", "+frag_keyframe+empty_moov+default_base_moof"]
// One fragment per piece: never cut before 2000 s.
const ONE_FRAGMENT = ["-min_frag_duration", "2000000000"]

/** A remuxed segment: its own init and its fragments, timed from 0. */
export interface Remuxed {
  readonly init: Uint8Array
  readonly fragments: Uint8Array
  readonly timing: FragmentTiming
}

/**
 * How raw pieces are remuxed: `native` in process (H.264 and AAC; anything else still goes to
 * ffmpeg), or `ffmpeg` always (one process per segment, as before; kept to measure against).
 */
export type RemuxMode = "native" | "ffmpeg"

/**
 * How mix windows are made: `native` decodes with long-lived ffmpeg decoders, mixes in process and
 * encodes with a long-lived ffmpeg (`nativeMix.ts`; a window it cannot reproduce goes to ffmpeg),
 * so a window starts no process; `faad` is the same with one faad process per channel run (the
 * previous native mix); `ffmpeg` runs one ffmpeg per window. The last two are kept to measure against.
 */
export type MixMode = "native" | "faad" | "ffmpeg"

export interface MixOptions {
  readonly mode: MixMode
  /** The faad binary (`faad` mode); undefined: not installed, every window is mixed by ffmpeg. */
  readonly faad: string | undefined
}

/**
 * Stream-copies the first video or audio stream of an MPEG-TS segment into fragmented MP4: in
 * process when it can (`tsRemux.ts`), else with ffmpeg, which also decides what is unusable.
 */
export const remuxSegment = async (
  tools: FfmpegTools,
  ts: Uint8Array,
  type: "video" | "audio",
  mode: RemuxMode = "native",
): Promise<Remuxed> => {
  if (mode === "native") {
    try {
      const { init, fragments } = remuxTs(ts, type)
      return { init, fragments, timing: fragmentTiming(fragments) }
    } catch (error) {
      if (!(error instanceof NotRemuxable)) throw error
    }
  }
  return remuxWithFfmpeg(tools, ts, type)
}

const remuxWithFfmpeg = async (
  tools: FfmpegTools,
  ts: Uint8Array,
  type: "video" | "audio",
): Promise<Remuxed> => {
  const out = await run(
    tools.ffmpeg,
    [
      ...["-hide_banner", "-v", "error", "-f", "mpegts", "-i", "pipe:0"],
      ...["-map", type === "video" ? "0:v:0" : "0:a:0", "-c", "copy"],
      ...(type === "video"
        ? ["-video_track_timescale", String(VIDEO_TIMESCALE)]
        : ["-bsf:a", "aac_adtstoasc"]),
      ...FRAGMENTED,
      ...ONE_FRAGMENT,
      "pipe:1",
    ],
    ts,
  )
  const split = splitFragmented(out)
  const timing = fragmentTiming(split.fragments)
  if (timing.samples === 0 || timing.duration === 0) throw new Error(`no ${type} samples in the segment`)
  return { ...split, timing }
}

/** One channel's contribution to a mix window: a contiguous run of its segments. */
export interface MixInput {
  /** The run's MPEG-TS segments, concatenated (continuous timestamps). */
  readonly ts: Uint8Array
  /** Where the run's first sample falls, in samples from the window's start (pre-roll included). */
  readonly offset: number
}

/**
 * Mixes `inputs` over `PRE_ROLL + length` samples and encodes them to AAC; returns one fragment
 * of the last `length / 1024` frames (the pre-roll and the encoder's priming frame dropped).
 */
export const mixWindow = async (
  tools: FfmpegTools,
  inputs: ReadonlyArray<MixInput>,
  length: number,
): Promise<{ fragment: Uint8Array; frames: number }> => {
  const total = PRE_ROLL + length
  const adts = await runMixGraph(tools, inputs, length, [...AAC_OUT(MIX_RATE, 2), "-f", "adts"])
  const frames = adtsFrames(adts)
  // Frame 0 is the encoder's priming; frame k + 1 decodes to samples [k·1024, (k + 1)·1024).
  const kept = frames.slice(1 + PRE_ROLL / AAC_FRAME, 1 + total / AAC_FRAME)
  if (kept.length !== length / AAC_FRAME)
    throw new Error(`mix produced ${kept.length} frames, wanted ${length / AAC_FRAME}`)
  return { fragment: aacFragment(kept), frames: kept.length }
}

/** `mixWindow`'s samples before encoding (interleaved stereo float, pre-roll included): for tests. */
export const mixWindowPcm = async (
  tools: FfmpegTools,
  inputs: ReadonlyArray<MixInput>,
  length: number,
): Promise<Float32Array> => {
  const out = await runMixGraph(tools, inputs, length, ["-f", "f32le"])
  return new Float32Array(Uint8Array.from(out).buffer)
}

/** The mix graph over `PRE_ROLL + length` samples, written to stdout with `output` options. */
const runMixGraph = (
  tools: FfmpegTools,
  inputs: ReadonlyArray<MixInput>,
  length: number,
  output: ReadonlyArray<string>,
): Promise<Uint8Array> => {
  const total = PRE_ROLL + length
  return withTempDir(async (dir) => {
    const args = ["-hide_banner", "-v", "error"]
    const filters: string[] = []
    for (const [i, input] of inputs.entries()) {
      const file = join(dir, `in${i}.ts`)
      await writeFile(file, input.ts)
      args.push("-f", "mpegts", "-i", file)
      const shift =
        input.offset >= 0
          ? `adelay=delays=${input.offset}S:all=1`
          : `atrim=start_sample=${-input.offset},asetpts=PTS-STARTPTS`
      filters.push(
        `[${i}:a:0]asetpts=PTS-STARTPTS,aresample=${MIX_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,${shift}[a${i}]`,
      )
    }
    const labels = inputs.map((_, i) => `[a${i}]`).join("")
    const pad = `apad=whole_len=${total},atrim=end_sample=${total}`
    if (inputs.length === 0) filters.push(`anullsrc=r=${MIX_RATE}:cl=stereo,atrim=end_sample=${total}[out]`)
    else if (inputs.length === 1) filters.push(`${labels}${pad}[out]`)
    else filters.push(`${labels}amix=inputs=${inputs.length}:normalize=0:duration=longest,${pad}[out]`)
    args.push("-filter_complex", filters.join(";"), "-map", "[out]")
    return run(tools.ffmpeg, [...args, ...output, "pipe:1"])
  })
}

const AAC_OUT = (rate: number, channels: number) => [
  ...["-c:a", "aac", "-b:a", channels > 1 ? "128k" : "96k"],
  ...["-ar", String(rate), "-ac", String(channels)],
]

/** An init segment for the mixed audio track (AAC-LC 48 kHz stereo). */
export const mixInit = async (tools: FfmpegTools): Promise<Uint8Array> => {
  const out = await run(tools.ffmpeg, [
    ...["-hide_banner", "-v", "error", "-f", "lavfi", "-i", `anullsrc=r=${MIX_RATE}:cl=stereo`, "-t", "0.1"],
    ...AAC_OUT(MIX_RATE, 2),
    ...FRAGMENTED,
    "pipe:1",
  ])
  return splitFragmented(out).init
}

/** What a filler must match to play inside a channel's track. */
export type FillSpec =
  | {
      readonly type: "audio"
      readonly sampleRate: number
      readonly channels: number
      readonly frames: number
    }
  | {
      readonly type: "video"
      readonly width: number
      readonly height: number
      /** Frame rate as `num/den`. */
      readonly rate: string
      readonly frames: number
    }

/** Silence or black of `spec.frames` frames, as fragments timed from 0. */
export const makeFill = async (
  tools: FfmpegTools,
  spec: FillSpec,
  mode: RemuxMode = "native",
): Promise<Remuxed> => {
  if (spec.type === "audio") {
    const samples = spec.frames * AAC_FRAME
    const layout = spec.channels === 1 ? "mono" : "stereo"
    const adts = await run(tools.ffmpeg, [
      ...["-hide_banner", "-v", "error", "-f", "lavfi", "-i", `anullsrc=r=${spec.sampleRate}:cl=${layout}`],
      ...["-af", `atrim=end_sample=${samples}`],
      ...AAC_OUT(spec.sampleRate, spec.channels),
      ...["-f", "adts", "pipe:1"],
    ])
    const frames = adtsFrames(adts).slice(1, 1 + spec.frames)
    const fragments = aacFragment(frames)
    return { init: new Uint8Array(0), fragments, timing: fragmentTiming(fragments) }
  }
  // Black H.264 in MPEG-TS keeps its parameter sets in-band, so it decodes after the channel's
  // own init; no B-frames, so it presents from its first sample.
  const ts = await run(tools.ffmpeg, [
    ...[
      "-hide_banner",
      "-v",
      "error",
      "-f",
      "lavfi",
      "-i",
      `color=c=black:s=${spec.width}x${spec.height}:r=${spec.rate}`,
    ],
    ...["-frames:v", String(spec.frames), "-c:v", "libx264", "-preset", "ultrafast", "-tune", "stillimage"],
    ...["-pix_fmt", "yuv420p", "-bf", "0", "-x264-params", "repeat-headers=1", "-f", "mpegts", "pipe:1"],
  ])
  return remuxSegment(tools, ts, "video", mode)
}

/** Stream parameters of a segment, for fillers. */
export interface StreamParams {
  readonly width?: number
  readonly height?: number
  readonly rate?: string
  readonly sampleRate?: number
  readonly channels?: number
}

/** Probes the first video or audio stream of an MPEG-TS segment. */
export const probeSegment = async (
  tools: FfmpegTools,
  ts: Uint8Array,
  type: "video" | "audio",
): Promise<StreamParams> => {
  const out = await run(
    tools.ffprobe,
    [
      ...["-v", "error", "-f", "mpegts", "-i", "pipe:0", "-select_streams", type === "video" ? "v:0" : "a:0"],
      ...[
        "-show_entries",
        "stream=width,height,avg_frame_rate,r_frame_rate,sample_rate,channels",
        "-of",
        "json",
      ],
    ],
    ts,
  )
  const stream = (
    JSON.parse(Buffer.from(out).toString("utf8")) as { streams?: Array<Record<string, unknown>> }
  ).streams?.[0]
  if (stream === undefined) throw new Error(`no ${type} stream to probe`)
  const rate = [stream.avg_frame_rate, stream.r_frame_rate].find(
    (r): r is string => typeof r === "string" && /^[1-9]\d*\/[1-9]\d*$/.test(r),
  )
  return {
    ...(typeof stream.width === "number" ? { width: stream.width } : {}),
    ...(typeof stream.height === "number" ? { height: stream.height } : {}),
    ...(rate === undefined ? {} : { rate }),
    ...(stream.sample_rate === undefined ? {} : { sampleRate: Number(stream.sample_rate) }),
    ...(typeof stream.channels === "number" ? { channels: stream.channels } : {}),
  }
}

const withTempDir = async <A>(f: (dir: string) => Promise<A>): Promise<A> => {
  const dir = await mkdtemp(join(tmpdir(), "capture-muxer-"))
  try {
    return await f(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
