/**
 * Finding and running ffmpeg / ffprobe. Resolution order, for each tool: `FFMPEG_PATH` /
 * `FFPROBE_PATH`, then the ffmpeg-static (ffprobe-static) binary if that package is installed
 * and its file exists, then the tool on `PATH`. `resolveFfmpeg()` fails at start with one clear
 * message when a tool is missing, rather than at the first export.
 */
import { accessSync, constants } from "node:fs"
import { createRequire } from "node:module"
import { delimiter, join } from "node:path"

/** The two binaries, resolved to paths. */
export interface FfmpegTools {
  readonly ffmpeg: string
  readonly ffprobe: string
}

/** ffmpeg or ffprobe could not be found. */
export class FfmpegNotFound extends Error {
  readonly _tag = "FfmpegNotFound"
  constructor(
    readonly tool: "ffmpeg" | "ffprobe",
    readonly tried: ReadonlyArray<string>,
  ) {
    super(
      `${tool} not found (tried ${tried.join(", ")}); install ffmpeg (apt-get install ffmpeg) or set ${
        tool === "ffmpeg" ? "FFMPEG_PATH" : "FFPROBE_PATH"
      }`,
    )
  }
}

/** An ffmpeg / ffprobe run that exited with an error. */
export class FfmpegFailed extends Error {
  readonly _tag = "FfmpegFailed"
  constructor(
    readonly tool: string,
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(`${tool} exited with ${code}: ${stderr.trim().split("\n").slice(-3).join(" | ")}`)
  }
}

const isExecutable = (path: string): boolean => {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

const fromStaticPackage = (name: "ffmpeg-static" | "ffprobe-static"): string | undefined => {
  try {
    const exported: unknown = createRequire(import.meta.url)(name)
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

const onPath = (tool: string, env: NodeJS.ProcessEnv): string | undefined =>
  (env.PATH ?? "")
    .split(delimiter)
    .filter((dir) => dir !== "")
    .map((dir) => join(dir, tool))
    .find(isExecutable)

const resolveTool = (tool: "ffmpeg" | "ffprobe", env: NodeJS.ProcessEnv): string => {
  const variable = tool === "ffmpeg" ? "FFMPEG_PATH" : "FFPROBE_PATH"
  const explicit = env[variable]
  const tried: string[] = []
  if (explicit !== undefined && explicit !== "") {
    if (isExecutable(explicit)) return explicit
    tried.push(`${variable}=${explicit}`)
  }
  const fromPackage = fromStaticPackage(tool === "ffmpeg" ? "ffmpeg-static" : "ffprobe-static")
  if (fromPackage !== undefined) return fromPackage
  tried.push(tool === "ffmpeg" ? "ffmpeg-static" : "ffprobe-static")
  const found = onPath(tool, env)
  if (found !== undefined) return found
  tried.push("PATH")
  throw new FfmpegNotFound(tool, tried)
}

/** Resolves ffmpeg and ffprobe; throws `FfmpegNotFound` naming what was tried. */
export const resolveFfmpeg = (env: NodeJS.ProcessEnv = process.env): FfmpegTools => ({
  ffmpeg: resolveTool("ffmpeg", env),
  ffprobe: resolveTool("ffprobe", env),
})
