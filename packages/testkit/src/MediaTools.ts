/**
 * Running ffmpeg and ffprobe from tests and benchmarks, and the measurements several suites take
 * with them. Each measurement takes the binary and ffmpeg input arguments (`["-i", file]`, or
 * `["-f", "mpegts", "-i", "pipe:0"]` with the bytes to feed on stdin).
 */
import { spawn } from "node:child_process"

/** What a finished tool run left: its exit code, stdout and stderr. */
export interface ToolRun {
  readonly code: number | null
  readonly stdout: Buffer
  readonly stderr: string
}

/** Runs `binary` to completion, writing `input` (if any) to its stdin. */
export const runTool = (binary: string, args: ReadonlyArray<string>, input?: Uint8Array): Promise<ToolRun> =>
  new Promise((resolve, reject) => {
    const child = spawn(binary, [...args], { stdio: ["pipe", "pipe", "pipe"] })
    const stdout: Array<Buffer> = []
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk))
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
    })
    child.once("error", reject)
    child.once("close", (code) => resolve({ code, stdout: Buffer.concat(stdout), stderr }))
    // The tool may stop reading early (it has what it needs): that is not the test's failure.
    child.stdin.on("error", () => {})
    child.stdin.end(input)
  })

/** Like `runTool`, but a non-zero exit is an error naming the command and the end of its stderr. */
export const runToolOk = async (
  binary: string,
  args: ReadonlyArray<string>,
  input?: Uint8Array,
): Promise<ToolRun> => {
  const run = await runTool(binary, args, input)
  if (run.code !== 0) {
    throw new Error(`${binary} ${args.join(" ")}: exit ${run.code}: ${run.stderr.trim().slice(-2_000)}`)
  }
  return run
}

/** `key=value` metadata lines of ffmpeg's `metadata`/`ametadata` filters, each with its frame time. */
export const metadataLines = (text: string, key: string): Array<{ t: number; v: number }> => {
  const out: Array<{ t: number; v: number }> = []
  let t = Number.NaN
  const pattern = new RegExp(`${key.replace(/\./g, "\\.")}=(\\S+)`)
  for (const line of text.split("\n")) {
    const time = /pts_time:([-\d.]+)/.exec(line)
    if (time !== null) t = Number(time[1])
    const value = pattern.exec(line)
    if (value !== null) out.push({ t, v: value[1] === "-inf" ? -200 : Number(value[1]) })
  }
  return out
}

/** Mean volume (dB) of the input's audio; -Infinity for digital silence. */
export const meanVolume = async (
  ffmpeg: string,
  input: ReadonlyArray<string>,
  bytes?: Uint8Array,
): Promise<number> => {
  const { stderr } = await runToolOk(
    ffmpeg,
    ["-hide_banner", ...input, "-vn", "-af", "volumedetect", "-f", "null", "-"],
    bytes,
  )
  const match = /mean_volume:\s*(-?[\d.]+|-inf) dB/.exec(stderr)
  return match === null || match[1] === "-inf" ? Number.NEGATIVE_INFINITY : Number(match[1])
}

/** Average Y, U and V over the input's video frames (a red screen: V high, U low). */
export const averageColour = async (
  ffmpeg: string,
  input: ReadonlyArray<string>,
  bytes?: Uint8Array,
): Promise<{ y: number; u: number; v: number }> => {
  const { stdout } = await runToolOk(
    ffmpeg,
    [
      ...["-hide_banner", "-v", "error", ...input, "-an"],
      ...["-vf", "signalstats,metadata=print:file=-", "-f", "null", "-"],
    ],
    bytes,
  )
  const text = stdout.toString("utf8")
  const mean = (key: string) => {
    const values = metadataLines(text, `lavfi.signalstats.${key}`).map((line) => line.v)
    return values.reduce((sum, value) => sum + value, 0) / Math.max(1, values.length)
  }
  return { y: mean("YAVG"), u: mean("UAVG"), v: mean("VAVG") }
}
