/**
 * A three-channel recording made faster than real time, cut the way the recorder cuts it: a
 * display (the recorder's test pattern) and two tones (its synthetic microphone and system audio),
 * encoded with the recorder's own encoder and segment-muxer options
 * (`@capture/recorder/FfmpegInputs`) without `-re`.
 *
 * Each tone is one ffmpeg run for the whole length (AAC is cheap). H.264 at 1280x720 is not: an
 * hour would take most of an hour of a shared 2-core machine, so the display encodes one minute
 * and the segment muxer cuts that minute played over and over (`-stream_loop`, stream copy, with
 * timestamps running on): the same bytes per frame as a real encode, and segments that differ by
 * their timestamps; only the picture repeats each minute.
 *
 * Recordings are cached on disk by their parameters (the ffmpeg command lines), so a rerun reuses
 * them: `$CAPTURE_BENCH_CACHE` or `<tmpdir>/capture-bench-cache`.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  type CaptureSettings,
  type CaptureSource,
  encodeArgs,
  segmentArgs,
  syntheticAudioGraph,
  syntheticVideoGraph,
} from "@capture/recorder/FfmpegInputs"

/** One segment as the recorder would upload it, timed from the recording's first sample. */
export interface RecordedSegment {
  readonly index: number
  readonly file: string
  /** From the segment list: its start on the channel's timeline (the recorder adds its wall clock). */
  readonly offsetMs: number
  readonly durationMs: number
}

/** A channel of the recording: what `POST /capture/session/start` names, and its segments in order. */
export interface RecordedChannel {
  readonly channelId: string
  readonly type: "audio" | "video"
  readonly segments: ReadonlyArray<RecordedSegment>
  /** A tone's beep frequency (Hz, `beep_factor` × its frequency): beeps on each whole second of its timeline. */
  readonly beepHz?: number
}

export interface SyntheticRecording {
  readonly minutes: number
  readonly directory: string
  /** False when it was found in the cache. */
  readonly generated: boolean
  /** Wall-clock seconds generating took (0 when cached). */
  readonly seconds: number
  readonly channels: ReadonlyArray<RecordedChannel>
}

/** The display's geometry and rate: the one-shot reference (1280x720, 15 fps). */
export interface RecordingOptions {
  /** Whole minutes. */
  readonly minutes: number
  readonly width: number
  readonly height: number
  readonly frameRate: number
  readonly ffmpeg: string
  /** Called now and then while generating, with a line to print. */
  readonly progress?: (line: string) => void
}

interface ChannelPlan {
  readonly channelId: string
  readonly type: "audio" | "video"
  readonly dir: string
  /** ffmpeg runs, one after the other, in the channel's folder. */
  readonly runs: ReadonlyArray<ReadonlyArray<string>>
  /** Files the runs leave that are not part of the recording. */
  readonly scratch: ReadonlyArray<string>
}

/** The synthetic channels the recorder offers (`syntheticChannels()`): ids, tones and beeps alike. */
const sources: ReadonlyArray<{ channelId: string; dir: string; source: CaptureSource }> = [
  { channelId: "display:1", dir: "display", source: { kind: "synthetic", media: "video" } },
  {
    channelId: "mic:default",
    dir: "mic",
    source: { kind: "synthetic", media: "audio", frequency: 440, beepFactor: 4 },
  },
  {
    channelId: "system_audio:default",
    dir: "system_audio",
    source: { kind: "synthetic", media: "audio", frequency: 660, beepFactor: 3 },
  },
]

/** The video block that is repeated: one minute. */
const BLOCK_SECONDS = 60

/** ffmpeg command lines (relative output paths, run with the channel's folder as cwd). */
const plans = (options: RecordingOptions): ReadonlyArray<ChannelPlan> => {
  const settings: CaptureSettings = {
    segmentSeconds: 2,
    frameRate: options.frameRate,
    syntheticVideo: { width: options.width, height: options.height, frameRate: options.frameRate },
    drawText: false,
  }
  const quiet = ["-hide_banner", "-nostats", "-loglevel", "error", "-y"]
  const segments = segmentArgs({ pattern: "%08d.ts", startIndex: 0, listFile: "list.csv" }, settings)
  return sources.map(({ channelId, dir, source }): ChannelPlan => {
    if (source.kind === "synthetic" && source.media === "audio") {
      const graph = syntheticAudioGraph(source.frequency, source.beepFactor)
      return {
        channelId,
        type: "audio",
        dir,
        runs: [
          [
            ...quiet,
            ...["-f", "lavfi", "-t", String(options.minutes * 60), "-i", graph],
            ...encodeArgs(source, settings),
            ...segments,
          ],
        ],
        scratch: [],
      }
    }
    const graph = syntheticVideoGraph(settings.syntheticVideo, settings.drawText)
    return {
      channelId,
      type: "video",
      dir,
      runs: [
        [
          ...quiet,
          ...["-f", "lavfi", "-t", String(BLOCK_SECONDS), "-i", graph],
          ...encodeArgs(source, settings),
          ...["-f", "mpegts", "block.ts"],
        ],
        [
          ...quiet,
          ...["-stream_loop", String(options.minutes * (60 / BLOCK_SECONDS) - 1), "-i", "block.ts"],
          ...["-map", "0:v:0", "-c", "copy"],
          ...segments,
        ],
      ],
      scratch: ["block.ts"],
    }
  })
}

/** The cache folder of all recordings. */
export const recordingCacheDir = (): string =>
  process.env.CAPTURE_BENCH_CACHE ?? join(tmpdir(), "capture-bench-cache")

/** ffmpeg processes running for this module, so a failing run can kill them. */
const running = new Set<ChildProcess>()

/** Kills the generators still running (synchronous: safe in an exit handler). */
export const killGenerators = (): void => {
  for (const child of running) child.kill("SIGKILL")
}

const run = (ffmpeg: string, args: ReadonlyArray<string>, cwd: string): Promise<void> =>
  new Promise((resolve, reject) => {
    const child = spawn(ffmpeg, args, { cwd, stdio: ["ignore", "ignore", "pipe"] })
    running.add(child)
    let stderr = ""
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-2_000)
    })
    child.once("error", (error) => {
      running.delete(child)
      reject(error)
    })
    child.once("exit", (code, signal) => {
      running.delete(child)
      if (code === 0) resolve()
      else reject(new Error(`ffmpeg in ${cwd} exited with ${code ?? signal}: ${stderr.trim()}`))
    })
  })

/** `name,start,end` lines of the segment muxer's CSV list. */
const readList = (dir: string): ReadonlyArray<RecordedSegment> =>
  readFileSync(join(dir, "list.csv"), "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line, position) => {
      const [name, start, end] = line.split(",")
      const index = Number(name?.replace(/\.ts$/, ""))
      if (name === undefined || index !== position || start === undefined || end === undefined)
        throw new Error(`unexpected segment list line in ${dir}: ${line}`)
      // As the recorder's spool: start = first sample + list start, duration = end − start.
      return {
        index,
        file: join(dir, name),
        offsetMs: Math.round(Number(start) * 1_000),
        durationMs: Math.max(0, Math.round((Number(end) - Number(start)) * 1_000)),
      }
    })

/** Generates the recording (the three channels at once), or finds it in the cache. */
export const syntheticRecording = async (options: RecordingOptions): Promise<SyntheticRecording> => {
  const channelPlans = plans(options)
  const key = createHash("sha256")
    .update(JSON.stringify({ v: 1, plans: channelPlans }))
    .digest("hex")
    .slice(0, 12)
  const directory = join(recordingCacheDir(), `${options.minutes}min-${key}`)
  const load = (generated: boolean, seconds: number): SyntheticRecording => ({
    minutes: options.minutes,
    directory,
    generated,
    seconds,
    channels: channelPlans.map((plan) => {
      const source = sources.find((s) => s.channelId === plan.channelId)?.source
      return {
        channelId: plan.channelId,
        type: plan.type,
        segments: readList(join(directory, plan.dir)),
        ...(source?.kind === "synthetic" && source.media === "audio"
          ? { beepHz: source.frequency * source.beepFactor }
          : {}),
      }
    }),
  })
  if (existsSync(join(directory, "complete"))) return load(false, 0)

  // Made aside and renamed when complete: an interrupted run leaves nothing that looks cached.
  const partial = `${directory}.partial-${process.pid}`
  rmSync(partial, { recursive: true, force: true })
  const started = performance.now()
  const expected = channelPlans.length * options.minutes * 30
  const ticker = setInterval(() => {
    const made = channelPlans
      .map((plan) => join(partial, plan.dir))
      .filter((dir) => existsSync(dir))
      .reduce((n, dir) => n + readdirSync(dir).filter((f) => /^\d{8}\.ts$/.test(f)).length, 0)
    options.progress?.(
      `  … ${options.minutes} min: ${made} of ~${expected} segments after ${((performance.now() - started) / 1000).toFixed(0)} s`,
    )
  }, 30_000)
  try {
    await Promise.all(
      channelPlans.map(async (plan) => {
        const cwd = join(partial, plan.dir)
        mkdirSync(cwd, { recursive: true })
        for (const args of plan.runs) await run(options.ffmpeg, args, cwd)
        for (const file of plan.scratch) rmSync(join(cwd, file), { force: true })
      }),
    )
    writeFileSync(join(partial, "commands.json"), `${JSON.stringify(channelPlans, null, 2)}\n`)
    writeFileSync(join(partial, "complete"), "")
    rmSync(directory, { recursive: true, force: true })
    renameSync(partial, directory)
  } catch (error) {
    killGenerators()
    rmSync(partial, { recursive: true, force: true })
    throw error
  } finally {
    clearInterval(ticker)
  }
  return load(true, (performance.now() - started) / 1000)
}
