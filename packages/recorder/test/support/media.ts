/**
 * What the recorder suites check media and processes with: ffprobe/ffmpeg over segment bytes
 * (through stdin), running processes by command line, polling, temporary folders.
 */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { averageColour as averageColourOf, meanVolume as meanVolumeOf, runTool } from "@capture/testkit"
import { resolveFfmpeg, resolveFfprobe } from "../../src/Ffmpeg.js"

export const ffmpeg = resolveFfmpeg()
export const ffprobe = resolveFfprobe(undefined, ffmpeg)

/** A segment's bytes as ffmpeg input, fed through stdin. */
const segmentInput = ["-f", "mpegts", "-i", "pipe:0"]

/**
 * ffprobe's view of a segment: codecs and duration. Segments are read as MPEG-TS, as the muxer
 * reads them: probing misreads a tiny last segment of a few silent AAC frames as raw ADTS or MP2.
 */
export const probeSegment = async (
  bytes: Buffer,
): Promise<{ readonly codecs: ReadonlyArray<string>; readonly durationSeconds: number }> => {
  const result = await runTool(
    ffprobe,
    [
      "-v",
      "error",
      "-show_entries",
      "format=duration:stream=codec_name",
      "-of",
      "json",
      "-f",
      "mpegts",
      "-i",
      "pipe:0",
    ],
    bytes,
  )
  if (result.code !== 0) throw new Error(`ffprobe failed: ${result.stderr}`)
  const json = JSON.parse(result.stdout.toString("utf8")) as {
    format?: { duration?: string }
    streams?: Array<{ codec_name?: string }>
  }
  return {
    codecs: (json.streams ?? []).map((stream) => stream.codec_name ?? ""),
    durationSeconds: Number(json.format?.duration ?? Number.NaN),
  }
}

/** Decodes a whole segment; resolves with ffmpeg's error output (empty when it decoded cleanly). */
export const decodeErrors = async (bytes: Buffer): Promise<string> => {
  const result = await runTool(ffmpeg, ["-v", "error", ...segmentInput, "-f", "null", "-"], bytes)
  return result.code === 0 ? result.stderr.trim() : `exit ${result.code}: ${result.stderr}`
}

/** The mean volume of an audio segment in dB. */
export const meanVolume = (bytes: Buffer): Promise<number> => meanVolumeOf(ffmpeg, segmentInput, bytes)

/** Average Y, U, V of a video segment's frames (signalstats). */
export const averageColour = (bytes: Buffer): Promise<{ y: number; u: number; v: number }> =>
  averageColourOf(ffmpeg, segmentInput, bytes)

/** Pids of live processes whose command line contains `text` (zombies have none). */
export const processesMentioning = async (text: string): Promise<ReadonlyArray<number>> => {
  const pids: number[] = []
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    try {
      const commandLine = (await readFile(`/proc/${name}/cmdline`, "utf8")).replaceAll("\0", " ")
      if (commandLine.includes(text)) pids.push(Number(name))
    } catch {
      // exited
    }
  }
  return pids
}

/** Polls `check` until it returns true; throws `message` after `timeoutMs`. */
export const waitFor = async (
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  message: string,
) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${message}`)
    await sleep(100)
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** A fresh temporary folder, and its removal. */
export const tempDir = async (prefix: string) => {
  const path = await mkdtemp(join(tmpdir(), `capture-recorder-${prefix}-`))
  return { path, remove: () => rm(path, { recursive: true, force: true }) }
}

/** Asserts-friendly summary of a channel's stored indexes. */
export const indexesOf = (segments: ReadonlyArray<{ readonly index: number }>): ReadonlyArray<number> =>
  segments.map((segment) => segment.index)

/** 0, 1, …, n-1. */
export const range = (n: number): ReadonlyArray<number> => Array.from({ length: n }, (_, index) => index)
