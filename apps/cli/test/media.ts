/**
 * Measuring media with ffmpeg/ffprobe (resolved as DEVELOPERS.md says): whether segment bytes
 * decode and how long they last, an export's streams, its flashes and beeps (for A/V sync) and the
 * level of given tones in its audio (for the mix).
 */
import { spawn } from "node:child_process"
import { resolveFfmpeg, resolveFfprobe } from "@capture/recorder"

export const ffmpeg = resolveFfmpeg()
export const ffprobe = resolveFfprobe(undefined, ffmpeg)

const run = (
  binary: string,
  args: ReadonlyArray<string>,
  input?: Uint8Array,
): Promise<{ readonly code: number | null; readonly stdout: Buffer; readonly stderr: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(binary, [...args], { stdio: ["pipe", "pipe", "pipe"] })
    const stdout: Buffer[] = []
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk))
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    child.stdin.on("error", () => {})
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stdout: Buffer.concat(stdout), stderr }))
    child.stdin.end(input)
  })

const runOk = async (binary: string, args: ReadonlyArray<string>, input?: Uint8Array) => {
  const result = await run(binary, args, input)
  if (result.code !== 0) throw new Error(`${binary} ${args.join(" ")}: exit ${result.code}: ${result.stderr}`)
  return result
}

/**
 * Decodes all of `bytes`, an MPEG-TS segment: ffmpeg's errors (empty when it decoded cleanly) and
 * the seconds of media it decoded (the sum of its frames' durations). The container is named, as
 * the muxer does: probing a tiny segment (a last one of a few audio frames) can take it for raw
 * ADTS or MPEG audio.
 */
export const decodeSegment = async (
  bytes: Uint8Array,
): Promise<{ readonly errors: string; readonly seconds: number }> => {
  const result = await run(
    ffmpeg,
    ["-v", "error", "-f", "mpegts", "-i", "pipe:0", "-map", "0", "-f", "framemd5", "pipe:1"],
    bytes,
  )
  if (result.code !== 0) return { errors: `exit ${result.code}: ${result.stderr}`, seconds: 0 }
  // `#tb 0: 1/48000`, then `stream, dts, pts, duration, size, hash` per decoded frame.
  const text = result.stdout.toString()
  const timeBase = /^#tb 0: (\d+)\/(\d+)$/m.exec(text)
  const frames = text
    .split("\n")
    .filter((line) => /^0,/.test(line))
    .map((line) => Number(line.split(",")[3]))
  const units = frames.reduce((sum, duration) => sum + duration, 0)
  return {
    errors: result.stderr.trim(),
    seconds: timeBase === null ? 0 : (units * Number(timeBase[1])) / Number(timeBase[2]),
  }
}

/** A file's streams and format, as ffprobe reports them. */
export interface Probe {
  readonly streams: ReadonlyArray<{
    readonly codec_type: string
    readonly codec_name: string
    readonly duration?: string
    readonly width?: number
    readonly height?: number
  }>
  readonly format: { readonly duration: string; readonly format_name: string }
}

export const probe = async (file: string): Promise<Probe> => {
  const { stdout } = await runOk(ffprobe, [
    "-v",
    "error",
    "-show_streams",
    "-show_format",
    "-of",
    "json",
    file,
  ])
  return JSON.parse(stdout.toString()) as Probe
}

/** `key=value` metadata lines of ffmpeg's `metadata`/`ametadata` filters, each with its frame time. */
const metadataLines = (text: string, key: string): Array<{ t: number; v: number }> => {
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

/** Times (s, on the file's timeline) of frames much brighter than the test pattern: the flashes. */
export const flashes = async (file: string): Promise<number[]> => {
  const { stdout } = await runOk(ffmpeg, [
    ...["-hide_banner", "-v", "error", "-i", file, "-an"],
    ...["-vf", "signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-", "-f", "null", "-"],
  ])
  return metadataLines(stdout.toString(), "lavfi.signalstats.YAVG")
    .filter((line) => line.v > 200)
    .map((line) => line.t)
}

/** Average Y, U and V of the frames of a video (a red screen: V high, U low). */
export const averageColour = async (file: string): Promise<{ y: number; u: number; v: number }> => {
  const { stdout } = await runOk(ffmpeg, [
    ...["-hide_banner", "-v", "error", "-i", file, "-an"],
    ...["-vf", "signalstats,metadata=print:file=-", "-f", "null", "-"],
  ])
  const text = stdout.toString()
  const mean = (key: string) => {
    const values = metadataLines(text, `lavfi.signalstats.${key}`).map((line) => line.v)
    return values.reduce((sum, value) => sum + value, 0) / Math.max(1, values.length)
  }
  return { y: mean("YAVG"), u: mean("UAVG"), v: mean("VAVG") }
}

/**
 * Times of tone bursts at `hz` in the first audio stream of `input` (ffmpeg input arguments): the
 * audio band-passed around `hz`, its power in 2 ms windows; a burst where it rises past 12 dB below
 * the loudest window (it must fall 20 dB below that before the next), timed by the centre of its
 * energy over the 70 ms from just before that rise (steadier than the crossing itself).
 */
const burstTimes = async (input: ReadonlyArray<string>, hz: number): Promise<number[]> => {
  const band = `bandpass=f=${hz}:width_type=h:w=100`
  const { stdout } = await runOk(ffmpeg, [
    ...["-hide_banner", "-v", "error", ...input, "-vn", "-af"],
    `${band},${band},asetnsamples=n=96,astats=metadata=1:reset=1,ametadata=print:key=lavfi.astats.Overall.RMS_level:file=-`,
    ...["-f", "null", "-"],
  ])
  const levels = metadataLines(stdout.toString(), "lavfi.astats.Overall.RMS_level")
  const loudest = Math.max(...levels.map((line) => line.v))
  const times: number[] = []
  let on = false
  for (const [position, { v }] of levels.entries()) {
    if (v > loudest - 12 && !on) {
      on = true
      let weights = 0
      let moment = 0
      for (const window of levels.slice(Math.max(0, position - 5), position + 30)) {
        const weight = 10 ** (window.v / 10)
        weights += weight
        moment += weight * window.t
      }
      times.push(moment / weights)
    } else if (v < loudest - 20) on = false
  }
  return times
}

const latencies = new Map<number, Promise<number>>()

/** How far after its start `burstTimes` puts a 40 ms burst at `hz` (the burst's centre, the filters' delay). */
const detectionLatency = (hz: number): Promise<number> => {
  let latency = latencies.get(hz)
  if (latency === undefined) {
    const burst = `aevalsrc='if(between(t\\,0.5\\,0.54)\\,0.25*sin(2*PI*${hz}*t)\\,0)':s=48000:d=1.5`
    latency = burstTimes(["-f", "lavfi", "-i", burst], hz).then((onsets) => {
      if (onsets.length !== 1) throw new Error(`calibrating the ${hz} Hz beep detector: onsets ${onsets}`)
      return (onsets[0] ?? 0) - 0.5
    })
    latencies.set(hz, latency)
  }
  return latency
}

/**
 * Onset times (s, on the file's timeline) of the 40 ms beeps at `hz` (ffmpeg's `sine` beeps): where
 * `burstTimes` puts them, less where it puts a generated burst after that burst's start.
 */
export const beeps = async (file: string, hz: number): Promise<number[]> => {
  const [onsets, latency] = await Promise.all([burstTimes(["-i", file], hz), detectionLatency(hz)])
  return onsets.map((onset) => onset - latency)
}

const RATE = 48_000

/** The file's audio as mono float samples at 48 kHz (and the time of its first sample). */
const monoSamples = async (file: string): Promise<Float32Array> => {
  const { stdout } = await runOk(ffmpeg, [
    ...["-hide_banner", "-v", "error", "-i", file, "-vn", "-ac", "1", "-ar", String(RATE)],
    ...["-f", "f32le", "pipe:1"],
  ])
  const copy = new Uint8Array(stdout.byteLength)
  copy.set(stdout)
  return new Float32Array(copy.buffer, 0, Math.floor(copy.byteLength / 4))
}

/** Amplitude of the `hz` component of `samples[start, start + n)` (Goertzel, Hann window). */
const toneAmplitude = (samples: Float32Array, start: number, n: number, hz: number): number => {
  const coefficient = 2 * Math.cos((2 * Math.PI * hz) / RATE)
  let s1 = 0
  let s2 = 0
  let windowSum = 0
  for (let i = 0; i < n; i++) {
    const w = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1))
    windowSum += w
    const s = (samples[start + i] ?? 0) * w + coefficient * s1 - s2
    s2 = s1
    s1 = s
  }
  const power = s1 * s1 + s2 * s2 - coefficient * s1 * s2
  return (2 * Math.sqrt(Math.max(0, power))) / windowSum
}

/**
 * Level (dBFS, peak amplitude of the sine) of each tone in the file's audio: the median over 1 s
 * windows, so a short gap or beep does not decide it.
 */
export const toneLevels = async (
  file: string,
  frequencies: ReadonlyArray<number>,
): Promise<Record<number, number>> => {
  const samples = await monoSamples(file)
  const windows = Math.floor(samples.length / RATE)
  if (windows === 0) throw new Error(`${file}: less than a second of audio`)
  const levels: Record<number, number> = {}
  for (const hz of frequencies) {
    const amplitudes = Array.from({ length: windows }, (_, w) =>
      toneAmplitude(samples, w * RATE, RATE, hz),
    ).sort((a, b) => a - b)
    const median = amplitudes[Math.floor(amplitudes.length / 2)] ?? 0
    levels[hz] = 20 * Math.log10(Math.max(median, 1e-12))
  }
  return levels
}

/** Mean volume (dB) of the file's audio. */
export const meanVolume = async (file: string): Promise<number> => {
  const { stderr } = await runOk(ffmpeg, [
    "-hide_banner",
    "-i",
    file,
    "-vn",
    "-af",
    "volumedetect",
    "-f",
    "null",
    "-",
  ])
  const match = /mean_volume:\s*(-?[\d.]+|-inf) dB/.exec(stderr)
  return match === null || match[1] === "-inf" ? Number.NEGATIVE_INFINITY : Number(match[1])
}

/**
 * How far each beep is from where it should be, relative to the flash nearest it: `expected` is
 * the beep's offset after a flash (s), compared modulo one second (flashes and beeps come every
 * second). A beep expected within 50 ms of the file's start or end (`duration`) is not measured
 * (cut, or not settled). Returns one error (s) per flash that has a beep within half a second.
 */
export const syncErrors = (
  flashTimes: ReadonlyArray<number>,
  beepTimes: ReadonlyArray<number>,
  expected: number,
  duration: number,
): Array<{ readonly flash: number; readonly error: number }> => {
  const errors: Array<{ flash: number; error: number }> = []
  for (const flash of flashTimes) {
    const target = flash + expected
    if (target < 0.05 || target > duration - 0.05) continue
    const nearest = beepTimes.reduce<number | undefined>(
      (best, beep) => (best === undefined || Math.abs(beep - target) < Math.abs(best - target) ? beep : best),
      undefined,
    )
    if (nearest !== undefined && Math.abs(nearest - target) < 0.5) {
      errors.push({ flash, error: nearest - target })
    }
  }
  return errors
}

/** `x` folded into [-0.5, 0.5): an offset modulo one second. */
export const foldSecond = (x: number): number => x - Math.floor(x + 0.5)
