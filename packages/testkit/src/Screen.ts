/**
 * A display recording with known text on screen: screens of lines drawn with ffmpeg's drawtext
 * (DejaVu Sans) on white, shown one after the other, cut into H.264 MPEG-TS segments with a
 * keyframe at each start, as the recorder encodes a display. For visual index tests and
 * bench:index.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { runToolOk } from "./MediaTools.js"

/** A screen: lines of text shown for `seconds`. */
export interface Screen {
  readonly lines: ReadonlyArray<string>
  readonly seconds: number
}

export interface ScreenSegment {
  readonly index: number
  readonly bytes: Uint8Array
  readonly offsetMs: number
  readonly durationMs: number
}

export interface ScreenRecording {
  readonly durationMs: number
  /** Where each screen starts and ends, ms from the recording's start. */
  readonly screens: ReadonlyArray<Screen & { readonly startMs: number; readonly endMs: number }>
  readonly segments: ReadonlyArray<ScreenSegment>
}

export const SCREEN_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

export interface ScreenOptions {
  readonly width?: number
  readonly height?: number
  readonly fps?: number
  readonly segmentSeconds?: number
}

/** `screens` recorded one after the other, as display segments. */
export const screenRecording = async (
  ffmpeg: string,
  screens: ReadonlyArray<Screen>,
  options: ScreenOptions = {},
): Promise<ScreenRecording> => {
  const width = options.width ?? 1280
  const height = options.height ?? 720
  const fps = options.fps ?? 10
  const segmentSeconds = options.segmentSeconds ?? 2
  const dir = mkdtempSync(join(tmpdir(), "capture-screen-"))
  try {
    const inputs: Array<string> = []
    const parts: Array<string> = []
    const layout: Array<Screen & { startMs: number; endMs: number }> = []
    let at = 0
    for (const [i, screen] of screens.entries()) {
      const textFiles = screen.lines.map((line, n) => {
        const file = join(dir, `screen-${i}-${n}.txt`)
        writeFileSync(file, line)
        return file
      })
      const draw = textFiles
        .map(
          (file, n) =>
            `drawtext=fontfile=${SCREEN_FONT}:textfile=${file}:fontsize=${n === 0 ? 40 : 28}:fontcolor=black:x=80:y=${80 + n * 70}`,
        )
        .join(",")
      inputs.push(
        "-f",
        "lavfi",
        "-t",
        String(screen.seconds),
        "-i",
        `color=c=white:s=${width}x${height}:r=${fps}`,
      )
      parts.push(`[${i}:v]${draw.length > 0 ? draw : "null"}[s${i}]`)
      layout.push({ ...screen, startMs: at, endMs: at + screen.seconds * 1000 })
      at += screen.seconds * 1000
    }
    const concat = `${parts.join(";")};${screens.map((_, i) => `[s${i}]`).join("")}concat=n=${screens.length}:v=1:a=0[out]`
    const gop = String(fps * segmentSeconds)
    await runToolOk(ffmpeg, [
      ...["-hide_banner", "-v", "error", "-y", ...inputs, "-filter_complex", concat, "-map", "[out]"],
      ...["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p"],
      ...["-g", gop, "-keyint_min", gop, "-sc_threshold", "0"],
      ...["-force_key_frames", `expr:gte(t,n_forced*${segmentSeconds})`],
      ...["-f", "segment", "-segment_format", "mpegts", "-segment_time", String(segmentSeconds)],
      ...["-reset_timestamps", "0", join(dir, "%08d.ts")],
    ])
    const segments = readdirSync(dir)
      .filter((name) => name.endsWith(".ts"))
      .sort()
      .map((name, index) => {
        const offsetMs = index * segmentSeconds * 1000
        return {
          index,
          bytes: new Uint8Array(readFileSync(join(dir, name))),
          offsetMs,
          durationMs: Math.min(segmentSeconds * 1000, at - offsetMs),
        }
      })
    return { durationMs: at, screens: layout, segments }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
