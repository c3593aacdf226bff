/**
 * Measuring A/V sync with ffmpeg on synthetic media: the flashes of the test pattern (a white frame
 * each second) and the beeps of ffmpeg's `sine` (a 40 ms beep each second), and how far each beep
 * is from where its flash says it belongs. Shared by the end-to-end tests and `bench:export`.
 * Every function takes the ffmpeg binary and ffmpeg input arguments (`["-i", file]`, or a window).
 */
import { metadataLines, runToolOk } from "./MediaTools.js"

/** Runs ffmpeg to completion; its stdout, or an error with the end of its stderr. */
const runOk = async (binary: string, args: ReadonlyArray<string>): Promise<string> =>
  (await runToolOk(binary, args)).stdout.toString("utf8")

/** Times (s, on the input's timeline) of frames much brighter than the test pattern: the flashes. */
export const flashTimes = async (ffmpeg: string, input: ReadonlyArray<string>): Promise<number[]> => {
  const text = await runOk(ffmpeg, [
    ...["-hide_banner", "-v", "error", ...input, "-an"],
    ...["-vf", "signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-", "-f", "null", "-"],
  ])
  return metadataLines(text, "lavfi.signalstats.YAVG")
    .filter((line) => line.v > 200)
    .map((line) => line.t)
}

/**
 * Times of tone bursts at `hz` in the first audio stream of `input`: the audio band-passed around
 * `hz`, its power in 2 ms windows; a burst where it rises past 12 dB below the loudest window (it
 * must fall 20 dB below that before the next), timed by the centre of its energy over the 70 ms
 * from just before that rise (steadier than the crossing itself).
 */
const burstTimes = async (ffmpeg: string, input: ReadonlyArray<string>, hz: number): Promise<number[]> => {
  const band = `bandpass=f=${hz}:width_type=h:w=100`
  const text = await runOk(ffmpeg, [
    ...["-hide_banner", "-v", "error", ...input, "-vn", "-af"],
    `${band},${band},asetnsamples=n=96,astats=metadata=1:reset=1,ametadata=print:key=lavfi.astats.Overall.RMS_level:file=-`,
    ...["-f", "null", "-"],
  ])
  const levels = metadataLines(text, "lavfi.astats.Overall.RMS_level")
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

const latencies = new Map<string, Promise<number>>()

/** How far after its start `burstTimes` puts a 40 ms burst at `hz` (the burst's centre, the filters' delay). */
const detectionLatency = (ffmpeg: string, hz: number): Promise<number> => {
  const key = `${ffmpeg}@${hz}`
  let latency = latencies.get(key)
  if (latency === undefined) {
    const burst = `aevalsrc='if(between(t\\,0.5\\,0.54)\\,0.25*sin(2*PI*${hz}*t)\\,0)':s=48000:d=1.5`
    latency = burstTimes(ffmpeg, ["-f", "lavfi", "-i", burst], hz).then((onsets) => {
      if (onsets.length !== 1) throw new Error(`calibrating the ${hz} Hz beep detector: onsets ${onsets}`)
      return (onsets[0] ?? 0) - 0.5
    })
    latencies.set(key, latency)
  }
  return latency
}

/**
 * Onset times (s, on the input's timeline) of the 40 ms beeps at `hz`: where `burstTimes` puts
 * them, less where it puts a generated burst after that burst's start.
 */
export const beepTimes = async (
  ffmpeg: string,
  input: ReadonlyArray<string>,
  hz: number,
): Promise<number[]> => {
  const [onsets, latency] = await Promise.all([burstTimes(ffmpeg, input, hz), detectionLatency(ffmpeg, hz)])
  return onsets.map((onset) => onset - latency)
}

/** `x` folded into [-0.5, 0.5): an offset modulo one second. */
export const foldSecond = (x: number): number => x - Math.floor(x + 0.5)

/**
 * How far each beep is from where it should be, relative to the flash nearest it: `expected` is
 * the beep's offset after a flash (s), compared modulo one second. A beep expected within `margin`
 * of the measured span [from, to] is not measured (cut, or the band-pass not settled). One error
 * (s) per flash that has a beep within half a second.
 */
export const syncErrors = (
  flashes: ReadonlyArray<number>,
  beeps: ReadonlyArray<number>,
  expected: number,
  span: { readonly from: number; readonly to: number; readonly margin: number },
): Array<{ readonly flash: number; readonly error: number }> => {
  const errors: Array<{ flash: number; error: number }> = []
  for (const flash of flashes) {
    const target = flash + expected
    if (target < span.from + span.margin || target > span.to - span.margin) continue
    const nearest = beeps.reduce<number | undefined>(
      (best, beep) => (best === undefined || Math.abs(beep - target) < Math.abs(best - target) ? beep : best),
      undefined,
    )
    if (nearest !== undefined && Math.abs(nearest - target) < 0.5)
      errors.push({ flash, error: nearest - target })
  }
  return errors
}
