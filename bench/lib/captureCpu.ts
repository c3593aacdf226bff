/**
 * CPU of the recorder's capture of one channel: ffmpeg with the recorder's own command line
 * (`captureArgs`, as `CaptureClient` builds it) writing segments into a temporary folder, its CPU
 * time (every thread, x264's included) read from /proc over a window after start-up.
 */
import { spawn } from "node:child_process"
import { mkdtemp, readFile, rm, stat } from "node:fs/promises"
import { tmpdir } from "node:os"
import { basename, join, sep } from "node:path"
import { type CaptureSettings, type Channel, captureArgs, segmentPattern } from "@capture/recorder"
import { cpuMs, totalCpuMs } from "./processCpu.js"
import type { Teardown } from "./teardown.js"

/** One channel's capture cost. */
export interface CaptureCpu {
  readonly channel: string
  /** What was captured, and how. */
  readonly source: string
  readonly windowSeconds: number
  /** ffmpeg's CPU seconds per second of recording: 1 = one core busy throughout. */
  readonly cores: number
  /** The same for the servers it captured from (X server, PulseAudio), when given. */
  readonly serverCores: number | undefined
  /** Bitrate of the segments it wrote (kbit/s). */
  readonly kbps: number
  readonly segments: number
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Captures `channel` for `warmUpMs` + `windowMs`, measuring the window. */
export const measureCaptureCpu = async (options: {
  readonly ffmpeg: string
  readonly channel: Channel
  readonly settings: CaptureSettings
  readonly env: NodeJS.ProcessEnv
  readonly source: string
  readonly warmUpMs: number
  readonly windowMs: number
  readonly serverPids?: ReadonlyArray<number>
  /** Stops ffmpeg and removes its folder should the benchmark be interrupted. */
  readonly teardown: Teardown
}): Promise<CaptureCpu> => {
  const dir = await mkdtemp(join(tmpdir(), "capture-bench-capture-"))
  const listFile = join(dir, "segments.csv")
  const args = captureArgs(
    options.channel.source,
    { pattern: segmentPattern(dir, sep), startIndex: 0, listFile },
    options.settings,
  )
  const child = spawn(options.ffmpeg, [...args], { env: options.env, stdio: ["pipe", "ignore", "pipe"] })
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  let log = ""
  child.stderr.on("data", (chunk: Buffer) => {
    log = (log + chunk.toString("utf8")).slice(-4_000)
  })
  child.stdin.on("error", () => {})
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    // As the recorder ends a run: `q`, so the last segment is finished.
    child.stdin.end("q")
    await Promise.race([exited, sleep(5_000)])
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL")
      await exited
    }
  }
  const cleanUp = async () => {
    await stop()
    await rm(dir, { recursive: true, force: true })
  }
  options.teardown.add(`ffmpeg capturing ${options.channel.id}`, { stop: cleanUp })
  try {
    const started = Date.now()
    while (!log.includes("Press [q] to stop")) {
      if (child.exitCode !== null) throw new Error(`ffmpeg for ${options.channel.id} exited: ${log.trim()}`)
      if (Date.now() - started > 15_000)
        throw new Error(`ffmpeg for ${options.channel.id} did not start: ${log}`)
      await sleep(50)
    }
    const pid = child.pid
    if (pid === undefined) throw new Error("ffmpeg has no pid")
    await sleep(options.warmUpMs)
    const servers = options.serverPids ?? []
    const before = { ffmpeg: cpuMs(pid), servers: totalCpuMs(servers), at: performance.now() }
    await sleep(options.windowMs)
    const wallMs = performance.now() - before.at
    const cores = (cpuMs(pid) - before.ffmpeg) / wallMs
    const serverCores = servers.length === 0 ? undefined : (totalCpuMs(servers) - before.servers) / wallMs
    if (child.exitCode !== null) throw new Error(`ffmpeg for ${options.channel.id} stopped: ${log.trim()}`)
    await stop()
    // The segments it finished: name,start,end (seconds) per line.
    const entries = (await readFile(listFile, "utf8").catch(() => ""))
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => line.split(","))
    let bytes = 0
    let seconds = 0
    for (const [name = "", start = "", end = ""] of entries) {
      bytes += (await stat(join(dir, basename(name)))).size
      seconds += Number(end) - Number(start)
    }
    return {
      channel: options.channel.id,
      source: options.source,
      windowSeconds: wallMs / 1000,
      cores,
      serverCores,
      kbps: seconds > 0 ? (bytes * 8) / 1000 / seconds : 0,
      segments: entries.length,
    }
  } finally {
    await cleanUp()
  }
}
