/**
 * Measuring media with ffmpeg/ffprobe (resolved as DEVELOPERS.md says): whether segment bytes
 * decode and how long they last, an export's streams, its flashes and beeps (for A/V sync) and the
 * level of given tones in its audio (for the mix).
 */
import { resolveFfmpeg, resolveFfprobe } from "@capture/recorder"
import {
  averageColour as averageColourOf,
  beepTimes,
  flashTimes,
  meanVolume as meanVolumeOf,
  runTool,
  runToolOk,
} from "@capture/testkit"

export const ffmpeg = resolveFfmpeg()
export const ffprobe = resolveFfprobe(undefined, ffmpeg)

/**
 * Decodes all of `bytes`, an MPEG-TS segment: ffmpeg's errors (empty when it decoded cleanly) and
 * the seconds of media it decoded (the sum of its frames' durations). The container is named, as
 * the muxer does: probing a tiny segment (a last one of a few audio frames) can take it for raw
 * ADTS or MPEG audio.
 */
export const decodeSegment = async (
  bytes: Uint8Array,
): Promise<{ readonly errors: string; readonly seconds: number }> => {
  const result = await runTool(
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
  readonly format: { readonly duration: string; readonly format_name: string; readonly start_time?: string }
}

export const probe = async (file: string): Promise<Probe> => {
  const { stdout } = await runToolOk(ffprobe, [
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

/** ffmpeg's errors decoding all of `file` (a path or URL): empty when it decoded cleanly. */
export const decodeErrors = async (file: string): Promise<string> => {
  const result = await runTool(ffmpeg, ["-v", "error", "-i", file, "-map", "0", "-f", "null", "-"])
  return result.code === 0 ? result.stderr.toString().trim() : `exit ${result.code}: ${result.stderr}`
}

/** Times (s, on the file's timeline) of the test pattern's flashes. */
export const flashes = (file: string): Promise<number[]> => flashTimes(ffmpeg, ["-i", file])

/** Average Y, U and V of the frames of a video (a red screen: V high, U low). */
export const averageColour = (file: string) => averageColourOf(ffmpeg, ["-i", file])

/** Onset times (s, on the file's timeline) of the 40 ms beeps at `hz` (ffmpeg's `sine` beeps). */
export const beeps = (file: string, hz: number): Promise<number[]> => beepTimes(ffmpeg, ["-i", file], hz)

const RATE = 48_000

/** The file's audio as mono float samples at 48 kHz (and the time of its first sample). */
const monoSamples = async (file: string): Promise<Float32Array> => {
  const { stdout } = await runToolOk(ffmpeg, [
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
export const meanVolume = (file: string): Promise<number> => meanVolumeOf(ffmpeg, ["-i", file])
