/**
 * Finding ffmpeg and ffprobe. For each: an explicit path, the environment (`FFMPEG_PATH` /
 * `FFPROBE_PATH`), the binary of `ffmpeg-static` / `ffprobe-static` when that package is installed
 * and its file exists, then the name on `PATH`; ffprobe also looks beside a resolved ffmpeg. A
 * path given explicitly or in the environment that is not executable is an error naming it: the
 * operator asked for that binary, and silently running another would hide the mistake.
 */
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { Data } from "effect"
import { executableName, findOnPath, isExecutable } from "./Executables.js"

/** The two binaries, resolved to paths. */
export interface FfmpegTools {
  readonly ffmpeg: string
  readonly ffprobe: string
}

/** No usable ffmpeg (or ffprobe) binary was found; the message says what was tried and what to do. */
export class FfmpegNotFound extends Data.TaggedError("FfmpegNotFound")<{
  readonly binary: "ffmpeg" | "ffprobe"
  readonly message: string
}> {}

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
export const resolveFfmpeg = (explicit?: string, env: NodeJS.ProcessEnv = process.env): string => {
  if (explicit) return checked("ffmpeg", explicit, "ffmpegPath")
  const fromEnv = env.FFMPEG_PATH
  if (fromEnv) return checked("ffmpeg", fromEnv, "FFMPEG_PATH")
  const found = fromStaticPackage("ffmpeg-static") ?? findOnPath("ffmpeg", env)
  if (found === undefined) {
    throw new FfmpegNotFound({
      binary: "ffmpeg",
      message:
        "ffmpeg not found (tried FFMPEG_PATH, ffmpeg-static, PATH): install it (Debian: apt-get install " +
        "ffmpeg; macOS: brew install ffmpeg; Windows: winget install ffmpeg), or set FFMPEG_PATH",
    })
  }
  return found
}

/** The ffprobe binary: `explicit`, `FFPROBE_PATH`, ffprobe-static, beside `ffmpegPath`, or on PATH. */
export const resolveFfprobe = (
  explicit?: string,
  ffmpegPath?: string,
  env: NodeJS.ProcessEnv = process.env,
): string => {
  if (explicit) return checked("ffprobe", explicit, "ffprobePath")
  const fromEnv = env.FFPROBE_PATH
  if (fromEnv) return checked("ffprobe", fromEnv, "FFPROBE_PATH")
  const beside = ffmpegPath === undefined ? undefined : join(dirname(ffmpegPath), executableName("ffprobe"))
  const found =
    fromStaticPackage("ffprobe-static") ??
    (beside !== undefined && isExecutable(beside) ? beside : undefined) ??
    findOnPath("ffprobe", env)
  if (found === undefined) {
    throw new FfmpegNotFound({
      binary: "ffprobe",
      message:
        "ffprobe not found (tried FFPROBE_PATH, ffprobe-static, beside ffmpeg, PATH): install ffmpeg " +
        "(it ships ffprobe), or set FFPROBE_PATH",
    })
  }
  return found
}

/** Both binaries (ffprobe preferably beside ffmpeg); throws `FfmpegNotFound` for the first missing. */
export const resolveFfmpegTools = (env: NodeJS.ProcessEnv = process.env): FfmpegTools => {
  const ffmpeg = resolveFfmpeg(undefined, env)
  return { ffmpeg, ffprobe: resolveFfprobe(undefined, ffmpeg, env) }
}
