/** Running a tool as a child process, bytes in and bytes out; every start counted. */
import { spawn } from "node:child_process"
import { basename } from "node:path"
import { counter } from "@capture/jetstream"
import { FfmpegFailed } from "../Ffmpeg.js"

const processesStarted = counter(
  "capture_muxer_processes_started_total",
  "Child processes the muxer started, by tool (ffmpeg, faad) and lifetime (one_shot: one piece; long_lived: many)",
)

/** Counts one start of `binary` (a process start is most of a short run's CPU). */
export const countStart = (binary: string, lifetime: "one_shot" | "long_lived"): void =>
  processesStarted.add(1, { tool: basename(binary), lifetime })

/** No single piece takes anywhere near this long; a run that does is stuck. */
const TIMEOUT_MS = 120_000

/** Runs a tool with `args`, feeding `input` on stdin; resolves with stdout. */
export const run = (
  binary: string,
  args: ReadonlyArray<string>,
  input?: Uint8Array,
  timeoutMs = TIMEOUT_MS,
): Promise<Uint8Array> =>
  new Promise((resolve, reject) => {
    countStart(binary, "one_shot")
    const child = spawn(binary, args, { stdio: ["pipe", "pipe", "pipe"] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    const timer = setTimeout(() => {
      err.push(Buffer.from(`\nkilled after ${timeoutMs} ms`))
      child.kill("SIGKILL")
    }, timeoutMs)
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk))
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk))
    child.on("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.on("close", (code) => {
      clearTimeout(timer)
      if (code === 0) resolve(Buffer.concat(out))
      else reject(new FfmpegFailed(binary, code, Buffer.concat(err).toString("utf8")))
    })
    // A tool that stops reading early (it had enough) closes stdin: not an error of ours.
    child.stdin.on("error", () => {})
    child.stdin.end(
      input === undefined ? undefined : Buffer.from(input.buffer, input.byteOffset, input.byteLength),
    )
  })
