/**
 * The few questions the recorder asks ffmpeg and ffprobe. Finding them is `@capture/binaries`'
 * (re-exported here for the recorder's users).
 */
import { execFile } from "node:child_process"

export {
  FfmpegNotFound,
  findOnPath,
  resolveFfmpeg,
  resolveFfprobe,
} from "@capture/binaries"

/** Runs a binary to completion, collecting its output (stdout and stderr), with a timeout. */
export const runTool = (
  binary: string,
  args: ReadonlyArray<string>,
  options: { readonly timeoutMs?: number; readonly env?: NodeJS.ProcessEnv } = {},
): Promise<{ readonly code: number; readonly stdout: string; readonly stderr: string }> =>
  new Promise((resolve) => {
    execFile(
      binary,
      [...args],
      {
        timeout: options.timeoutMs ?? 10_000,
        maxBuffer: 16 * 1024 * 1024,
        windowsHide: true,
        env: options.env ?? process.env,
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
        resolve({ code, stdout: String(stdout), stderr: String(stderr) })
      },
    )
  })

const drawtextCache = new Map<string, Promise<boolean>>()

/**
 * Whether this ffmpeg can render text (`drawtext`, which needs libfreetype and a font): asked once
 * per binary by rendering one frame.
 */
export const canDrawText = (ffmpegPath: string): Promise<boolean> => {
  let answer = drawtextCache.get(ffmpegPath)
  if (answer === undefined) {
    answer = runTool(ffmpegPath, [
      "-hide_banner",
      "-loglevel",
      "error",
      "-f",
      "lavfi",
      "-i",
      "testsrc2=size=64x64:rate=1:duration=1,drawtext=text='%{localtime}'",
      "-frames:v",
      "1",
      "-f",
      "null",
      "-",
    ]).then((result) => result.code === 0)
    drawtextCache.set(ffmpegPath, answer)
  }
  return answer
}

/** What ffprobe says about a media file: its duration and streams. */
export interface ProbeResult {
  readonly durationSeconds: number
  readonly startSeconds: number
  readonly streams: ReadonlyArray<{ readonly codecType: string; readonly codecName: string }>
}

/**
 * Probes `file` with ffprobe; undefined when it cannot be read as media. `format` names the
 * container instead of letting ffprobe guess (a tiny MPEG-TS segment of a few silent AAC frames
 * is guessed as raw ADTS or MP2, with a wrong duration).
 */
export const probeFile = async (
  ffprobePath: string,
  file: string,
  format?: string,
): Promise<ProbeResult | undefined> => {
  const result = await runTool(ffprobePath, [
    ...["-v", "error", "-show_entries", "format=duration,start_time:stream=codec_type,codec_name"],
    ...["-of", "json", ...(format === undefined ? [] : ["-f", format]), file],
  ])
  if (result.code !== 0) return undefined
  try {
    const json = JSON.parse(result.stdout) as {
      format?: { duration?: string; start_time?: string }
      streams?: Array<{ codec_type?: string; codec_name?: string }>
    }
    const durationSeconds = Number(json.format?.duration)
    if (!Number.isFinite(durationSeconds)) return undefined
    return {
      durationSeconds,
      startSeconds: Number(json.format?.start_time ?? 0) || 0,
      streams: (json.streams ?? []).map((stream) => ({
        codecType: stream.codec_type ?? "",
        codecName: stream.codec_name ?? "",
      })),
    }
  } catch {
    return undefined
  }
}
