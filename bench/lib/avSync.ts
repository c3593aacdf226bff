/**
 * A/V sync of an export made from synthetic channels: the display's white full-frame flash on each
 * whole second of its timeline against each tone's beep on each whole second of its own, measured
 * in a window at the start and one at the end of the MP4 (ffmpeg `-ss`/`-t` with `-copyts`, so an
 * hour-long export is not decoded whole and times stay on the file's timeline).
 *
 * The detectors are the end-to-end test's (`apps/cli/test/media.ts`: `flashes`, `beeps`,
 * `syncErrors`, `foldSecond`), copied here because the benchmarks do not import from test folders.
 */
import { spawn } from "node:child_process"

/** One tone of the mix: its carrier and its beep (`beep_factor` × carrier). */
export interface Tone {
  readonly channelId: string
  readonly beepHz: number
  /**
   * Where its beeps should fall after a flash (s, folded into ±0.5 s): the difference of the
   * channels' first-sample times.
   */
  readonly expected: number
}

/** One window's measurement. */
export interface SyncWindow {
  /** Seconds of the file analysed: [from, from + seconds). */
  readonly from: number
  readonly seconds: number
  readonly flashes: number
  /** Median phase of the flashes against the file's whole seconds (ms). */
  readonly flashPhaseMs: number
  /** Per tone: the flashes with a beep matched, and the largest |error| among them (ms). */
  readonly tones: ReadonlyArray<{
    readonly channelId: string
    readonly matched: number
    readonly maxAbsErrorMs: number
    readonly meanErrorMs: number
  }>
}

export interface SyncResult {
  readonly ok: boolean
  readonly problems: ReadonlyArray<string>
  readonly limitMs: number
  readonly start: SyncWindow
  readonly end: SyncWindow
}

const runOk = (binary: string, args: ReadonlyArray<string>): Promise<string> =>
  new Promise((resolve, reject) => {
    const child = spawn(binary, [...args], { stdio: ["ignore", "pipe", "pipe"] })
    const stdout: Array<Buffer> = []
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk))
    child.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-2_000)
    })
    child.once("error", reject)
    child.once("close", (code) =>
      code === 0
        ? resolve(Buffer.concat(stdout).toString("utf8"))
        : reject(new Error(`${binary} ${args.join(" ")}: exit ${code}: ${stderr.trim()}`)),
    )
  })

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

/** ffmpeg input options reading [from, from + seconds) of `input`, timestamps as in the file. */
const windowInput = (input: string, from: number, seconds: number): ReadonlyArray<string> => [
  ...["-ss", from.toFixed(3), "-t", seconds.toFixed(3), "-copyts", "-i", input],
]

/** Times (s, file timeline) of frames much brighter than the test pattern: the flashes. */
const flashes = async (ffmpeg: string, input: ReadonlyArray<string>): Promise<number[]> => {
  const text = await runOk(ffmpeg, [
    ...["-hide_banner", "-v", "error", ...input, "-an"],
    ...["-vf", "signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-", "-f", "null", "-"],
  ])
  return metadataLines(text, "lavfi.signalstats.YAVG")
    .filter((line) => line.v > 200)
    .map((line) => line.t)
}

/**
 * Times of tone bursts at `hz` in the first audio stream of `input` (ffmpeg input arguments): the
 * audio band-passed around `hz`, its power in 2 ms windows; a burst where it rises past 12 dB below
 * the loudest window (it must fall 20 dB below that before the next), timed by the centre of its
 * energy over the 70 ms from just before that rise.
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

const latencies = new Map<number, Promise<number>>()

/** How far after its start `burstTimes` puts a 40 ms burst at `hz` (the burst's centre, the filters' delay). */
const detectionLatency = (ffmpeg: string, hz: number): Promise<number> => {
  let latency = latencies.get(hz)
  if (latency === undefined) {
    const burst = `aevalsrc='if(between(t\\,0.5\\,0.54)\\,0.25*sin(2*PI*${hz}*t)\\,0)':s=48000:d=1.5`
    latency = burstTimes(ffmpeg, ["-f", "lavfi", "-i", burst], hz).then((onsets) => {
      if (onsets.length !== 1) throw new Error(`calibrating the ${hz} Hz beep detector: onsets ${onsets}`)
      return (onsets[0] ?? 0) - 0.5
    })
    latencies.set(hz, latency)
  }
  return latency
}

/** Onset times (s, file timeline) of the 40 ms beeps at `hz` (ffmpeg's `sine` beeps). */
const beeps = async (ffmpeg: string, input: ReadonlyArray<string>, hz: number): Promise<number[]> => {
  const [onsets, latency] = await Promise.all([burstTimes(ffmpeg, input, hz), detectionLatency(ffmpeg, hz)])
  return onsets.map((onset) => onset - latency)
}

/** `x` folded into [-0.5, 0.5): an offset modulo one second. */
export const foldSecond = (x: number): number => x - Math.floor(x + 0.5)

/**
 * How far each beep is from where it should be, relative to the flash nearest it (`expected` s
 * after it, modulo one second). A beep expected within `margin` of the window's edges is not
 * measured (cut, or the band-pass not settled). One error (s) per flash with a beep within 0.5 s.
 */
export const syncErrors = (
  flashTimes: ReadonlyArray<number>,
  beepTimes: ReadonlyArray<number>,
  expected: number,
  from: number,
  to: number,
  margin = 0.25,
): Array<{ readonly flash: number; readonly error: number }> => {
  const errors: Array<{ flash: number; error: number }> = []
  for (const flash of flashTimes) {
    const target = flash + expected
    if (target < from + margin || target > to - margin) continue
    const nearest = beepTimes.reduce<number | undefined>(
      (best, beep) => (best === undefined || Math.abs(beep - target) < Math.abs(best - target) ? beep : best),
      undefined,
    )
    if (nearest !== undefined && Math.abs(nearest - target) < 0.5)
      errors.push({ flash, error: nearest - target })
  }
  return errors
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN
}

const measureWindow = async (
  ffmpeg: string,
  input: string,
  from: number,
  seconds: number,
  tones: ReadonlyArray<Tone>,
): Promise<SyncWindow> => {
  const args = windowInput(input, from, seconds)
  const [flashTimes, ...beepTimes] = await Promise.all([
    flashes(ffmpeg, args),
    ...tones.map((tone) => beeps(ffmpeg, args, tone.beepHz)),
  ])
  return {
    from,
    seconds,
    flashes: flashTimes.length,
    flashPhaseMs: median(flashTimes.map(foldSecond)) * 1000,
    tones: tones.map((tone, position) => {
      const errors = syncErrors(flashTimes, beepTimes[position] ?? [], tone.expected, from, from + seconds)
      const abs = errors.map((e) => Math.abs(e.error) * 1000)
      return {
        channelId: tone.channelId,
        matched: errors.length,
        maxAbsErrorMs: abs.length === 0 ? Number.NaN : Math.max(...abs),
        meanErrorMs:
          errors.length === 0 ? Number.NaN : (errors.reduce((s, e) => s + e.error, 0) / errors.length) * 1000,
      }
    }),
  }
}

/**
 * Measures `input` (file or URL, `durationSeconds` long) in its first and last `windowSeconds`:
 * every tone's beeps within `limitMs` of where its flash says they belong, at least
 * `windowSeconds − 4` flashes matched per tone, and the flashes on the same phase of the file's
 * seconds at the end as at the start (within half a frame at `frameRate`).
 */
export const measureAvSync = async (options: {
  readonly ffmpeg: string
  readonly input: string
  readonly durationSeconds: number
  readonly tones: ReadonlyArray<Tone>
  readonly frameRate: number
  readonly windowSeconds?: number
  readonly limitMs?: number
}): Promise<SyncResult> => {
  const windowSeconds = Math.min(options.windowSeconds ?? 20, options.durationSeconds)
  const limitMs = options.limitMs ?? 40
  const measure = (from: number) =>
    measureWindow(options.ffmpeg, options.input, from, windowSeconds, options.tones)
  const start = await measure(0)
  const end = await measure(Math.max(0, Math.floor((options.durationSeconds - windowSeconds) * 1000) / 1000))
  const problems: Array<string> = []
  for (const [name, window] of [
    ["start", start],
    ["end", end],
  ] as const) {
    for (const tone of window.tones) {
      if (tone.matched < windowSeconds - 4)
        problems.push(
          `${name}: ${tone.channelId} beeps matched to ${tone.matched} of ${window.flashes} flashes`,
        )
      if (!(tone.maxAbsErrorMs <= limitMs))
        problems.push(`${name}: ${tone.channelId} off by up to ${tone.maxAbsErrorMs.toFixed(1)} ms`)
    }
  }
  const drift = Math.abs(foldSecond((end.flashPhaseMs - start.flashPhaseMs) / 1000)) * 1000
  if (!(drift <= 500 / options.frameRate))
    problems.push(`flashes moved ${drift.toFixed(1)} ms against the file's seconds from start to end`)
  return { ok: problems.length === 0, problems, limitMs, start, end }
}
