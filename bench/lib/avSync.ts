/**
 * A/V sync of an export made from synthetic channels: the display's white full-frame flash on each
 * whole second of its timeline against each tone's beep on each whole second of its own, measured
 * in a window at the start and one at the end of the MP4 (ffmpeg `-ss`/`-t` with `-copyts`, so an
 * hour-long export is not decoded whole and times stay on the file's timeline).
 *
 * The detectors are testkit's (`AvSync.ts`), the ones the end-to-end export test uses.
 */
import { beepTimes, flashTimes, foldSecond, syncErrors } from "@capture/testkit"

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

/** ffmpeg input options reading [from, from + seconds) of `input`, timestamps as in the file. */
const windowInput = (input: string, from: number, seconds: number): ReadonlyArray<string> => [
  ...["-ss", from.toFixed(3), "-t", seconds.toFixed(3), "-copyts", "-i", input],
]

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
  const [flashes, ...beeps] = await Promise.all([
    flashTimes(ffmpeg, args),
    ...tones.map((tone) => beepTimes(ffmpeg, args, tone.beepHz)),
  ])
  return {
    from,
    seconds,
    flashes: flashes.length,
    flashPhaseMs: median(flashes.map(foldSecond)) * 1000,
    tones: tones.map((tone, position) => {
      const errors = syncErrors(flashes, beeps[position] ?? [], tone.expected, {
        from,
        to: from + seconds,
        margin: 0.25,
      })
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
