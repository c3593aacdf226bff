/**
 * Finding ffmpeg and ffprobe, and the few questions the recorder asks them. Resolution order, for
 * each binary: an explicit path, the environment (`FFMPEG_PATH` / `FFPROBE_PATH`), the binary of
 * `ffmpeg-static` / `ffprobe-static` when that package is installed and its file exists, then the
 * name on `PATH`. ffprobe also looks beside a resolved ffmpeg.
 */
import { execFile } from "node:child_process"
import { accessSync, constants } from "node:fs"
import { createRequire } from "node:module"
import { delimiter, dirname, join } from "node:path"
import { Data } from "effect"

/** No usable ffmpeg (or ffprobe) binary was found. */
export class FfmpegNotFound extends Data.TaggedError("FfmpegNotFound")<{
  readonly binary: "ffmpeg" | "ffprobe"
  readonly message: string
}> {}

const exe = (name: string): string => (process.platform === "win32" ? `${name}.exe` : name)

const isExecutable = (path: string): boolean => {
  try {
    accessSync(path, process.platform === "win32" ? constants.F_OK : constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** The first executable `name` on `PATH`, if any. */
export const findOnPath = (name: string): string | undefined =>
  (process.env.PATH ?? "")
    .split(delimiter)
    .filter((dir) => dir !== "")
    .map((dir) => join(dir, exe(name)))
    .find(isExecutable)

const require = createRequire(import.meta.url)

/** The binary an optional `*-static` package points at, when it is installed and the file exists. */
const fromStaticPackage = (pkg: "ffmpeg-static" | "ffprobe-static"): string | undefined => {
  try {
    const exported: unknown = require(pkg)
    const path =
      typeof exported === "string"
        ? exported
        : typeof exported === "object" && exported !== null && "path" in exported
          ? String((exported as { path: unknown }).path)
          : undefined
    return path !== undefined && isExecutable(path) ? path : undefined
  } catch {
    return undefined
  }
}

const checked = (binary: "ffmpeg" | "ffprobe", path: string, source: string): string => {
  if (!isExecutable(path)) {
    throw new FfmpegNotFound({ binary, message: `${source}=${path} is not an executable file` })
  }
  return path
}

/** The ffmpeg binary: `explicit`, `FFMPEG_PATH`, ffmpeg-static's binary, or `ffmpeg` on PATH. */
export const resolveFfmpeg = (explicit?: string): string => {
  if (explicit) return checked("ffmpeg", explicit, "ffmpegPath")
  const fromEnv = process.env.FFMPEG_PATH
  if (fromEnv) return checked("ffmpeg", fromEnv, "FFMPEG_PATH")
  const found = fromStaticPackage("ffmpeg-static") ?? findOnPath("ffmpeg")
  if (found === undefined) {
    throw new FfmpegNotFound({
      binary: "ffmpeg",
      message:
        "ffmpeg not found: install it (Debian: apt-get install ffmpeg; macOS: brew install ffmpeg; " +
        "Windows: winget install ffmpeg), or set FFMPEG_PATH",
    })
  }
  return found
}

/** The ffprobe binary: `explicit`, `FFPROBE_PATH`, ffprobe-static, beside `ffmpegPath`, or on PATH. */
export const resolveFfprobe = (explicit?: string, ffmpegPath?: string): string => {
  if (explicit) return checked("ffprobe", explicit, "ffprobePath")
  const fromEnv = process.env.FFPROBE_PATH
  if (fromEnv) return checked("ffprobe", fromEnv, "FFPROBE_PATH")
  const beside = ffmpegPath === undefined ? undefined : join(dirname(ffmpegPath), exe("ffprobe"))
  const found =
    fromStaticPackage("ffprobe-static") ??
    (beside !== undefined && isExecutable(beside) ? beside : undefined) ??
    findOnPath("ffprobe")
  if (found === undefined) {
    throw new FfmpegNotFound({
      binary: "ffprobe",
      message: "ffprobe not found: install ffmpeg (it ships ffprobe), or set FFPROBE_PATH",
    })
  }
  return found
}

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
