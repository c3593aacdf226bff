/**
 * Voice activity: where utterances start and end in a stretch of audio, by frame energy. An
 * utterance ends after `hangoverMs` of silence, so a pause between words does not cut it, and a
 * segment border never does: audio after the last speech that has not been silent long enough is
 * reported as `open`, for the caller to carry into the next segment.
 */
import { msToSamples, SAMPLES_PER_MS } from "./Pcm.js"

export interface VoiceActivityOptions {
  /** Analysis frame, ms. */
  readonly frameMs: number
  /** A frame is speech above max(`minSpeechDbfs`, noise floor + `aboveFloorDb`). */
  readonly minSpeechDbfs: number
  readonly aboveFloorDb: number
  /** Silence that ends an utterance, ms. */
  readonly hangoverMs: number
  /** Speech shorter than this is noise (a click), ms. */
  readonly minSpeechMs: number
  /** Audio kept before the first and after the last speech frame, ms. */
  readonly padMs: number
  /** An utterance longer than this is cut (and the rest goes on as the next one), ms. */
  readonly maxUtteranceMs: number
}

export const defaultVoiceActivity: VoiceActivityOptions = {
  frameMs: 20,
  minSpeechDbfs: -42,
  aboveFloorDb: 12,
  hangoverMs: 600,
  minSpeechMs: 120,
  padMs: 150,
  maxUtteranceMs: 20_000,
}

/** A complete utterance: sample offsets into the analysed buffer, end exclusive. */
export interface UtteranceSpan {
  readonly start: number
  readonly end: number
}

/** What the analysis found. */
export interface VoiceActivity {
  readonly complete: ReadonlyArray<UtteranceSpan>
  /** Speech still going at the end of the buffer: from `start` on; `spoken` samples of speech in it. */
  readonly open: { readonly start: number; readonly spoken: number } | null
}

const frameDbfs = (pcm: Int16Array, from: number, to: number): number => {
  let sum = 0
  for (let i = from; i < to; i++) {
    const s = (pcm[i] ?? 0) / 32768
    sum += s * s
  }
  const rms = Math.sqrt(sum / Math.max(1, to - from))
  return rms <= 1e-9 ? -120 : 20 * Math.log10(rms)
}

/**
 * Finds utterances in `pcm`. `ended`: no audio follows (the channel's last segment, or a stop),
 * so speech running to the end is complete, not open.
 */
export const detectVoiceActivity = (
  pcm: Int16Array,
  ended: boolean,
  options: VoiceActivityOptions = defaultVoiceActivity,
): VoiceActivity => {
  const frame = msToSamples(options.frameMs)
  const frames = Math.floor(pcm.length / frame)
  const energies: Array<number> = []
  for (let f = 0; f < frames; f++) energies.push(frameDbfs(pcm, f * frame, (f + 1) * frame))
  const sorted = [...energies].sort((a, b) => a - b)
  const floor = sorted.length === 0 ? -120 : (sorted[Math.floor(sorted.length * 0.1)] ?? -120)
  const threshold = Math.max(options.minSpeechDbfs, floor + options.aboveFloorDb)
  const hangover = Math.ceil(options.hangoverMs / options.frameMs)
  const minSpeech = Math.ceil(options.minSpeechMs / options.frameMs)
  const maxFrames = Math.floor(options.maxUtteranceMs / options.frameMs)
  const pad = msToSamples(options.padMs)

  const complete: Array<UtteranceSpan> = []
  let first = -1 // first speech frame of the current utterance
  let last = -1 // last speech frame
  let speechFrames = 0
  const close = (endFrame: number) => {
    if (speechFrames >= minSpeech) {
      complete.push({
        start: Math.max(0, first * frame - pad),
        end: Math.min(pcm.length, (endFrame + 1) * frame + pad),
      })
    }
    first = -1
    last = -1
    speechFrames = 0
  }
  for (let f = 0; f < frames; f++) {
    const speech = (energies[f] ?? -120) > threshold
    if (speech) {
      if (first < 0) first = f
      last = f
      speechFrames++
      if (f - first + 1 >= maxFrames) close(f)
    } else if (first >= 0 && f - last >= hangover) {
      close(last)
    }
  }
  if (first < 0) return { complete, open: null }
  if (ended) {
    close(last)
    return { complete, open: null }
  }
  return { complete, open: { start: Math.max(0, first * frame - pad), spoken: speechFrames * frame } }
}

/** Milliseconds of `samples` at the pipeline rate. */
export const spanMs = (span: UtteranceSpan): number => (span.end - span.start) / SAMPLES_PER_MS
