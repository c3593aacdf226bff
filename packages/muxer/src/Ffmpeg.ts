/**
 * Running ffmpeg / ffprobe. Finding them is `@capture/binaries`' (`resolveFfmpegTools`), the one
 * resolver the recorder uses too.
 */
export type { FfmpegTools } from "@capture/binaries"

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
