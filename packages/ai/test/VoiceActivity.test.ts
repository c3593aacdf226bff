import { describe, expect, it } from "vitest"
import { detectVoiceActivity, msToSamples, SAMPLE_RATE } from "../src/index.js"

/** `ms` of a 300 Hz tone at about −12 dBFS (speech-like energy) or of faint noise. */
const tone = (ms: number): Int16Array =>
  Int16Array.from({ length: msToSamples(ms) }, (_, i) =>
    Math.round(8000 * Math.sin((2 * Math.PI * 300 * i) / SAMPLE_RATE)),
  )
const quiet = (ms: number): Int16Array =>
  Int16Array.from({ length: msToSamples(ms) }, (_, i) => ((i * 7919) % 21) - 10)
const join = (...parts: ReadonlyArray<Int16Array>): Int16Array => {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.length
  }
  return out
}
const ms = (samples: number) => samples / (SAMPLE_RATE / 1000)

describe("voice activity", () => {
  it("cuts utterances at pauses longer than the hangover, not at short ones", () => {
    const audio = join(quiet(500), tone(800), quiet(300), tone(700), quiet(1_000), tone(600), quiet(800))
    const found = detectVoiceActivity(audio, false)
    expect(found.complete).toHaveLength(2)
    expect(ms(found.complete[0]?.start ?? 0)).toBeCloseTo(350, -2)
    expect(ms(found.complete[0]?.end ?? 0)).toBeCloseTo(2_450, -2)
    expect(ms(found.complete[1]?.start ?? 0)).toBeCloseTo(3_150, -2)
    expect(found.open).toBeNull()
  })

  it("reports speech running to the end as open, and closes it when the audio ended", () => {
    const audio = join(quiet(400), tone(1_000))
    const open = detectVoiceActivity(audio, false)
    expect(open.complete).toHaveLength(0)
    expect(ms(open.open?.start ?? 0)).toBeCloseTo(250, -2)
    expect(ms(open.open?.spoken ?? 0)).toBeCloseTo(1_000, -2)
    const ended = detectVoiceActivity(audio, true)
    expect(ended.complete).toHaveLength(1)
    expect(ended.open).toBeNull()
  })

  it("hears nothing in silence or a click", () => {
    expect(detectVoiceActivity(quiet(2_000), false)).toEqual({ complete: [], open: null })
    expect(detectVoiceActivity(join(quiet(1_000), tone(40), quiet(1_000)), false).complete).toHaveLength(0)
  })
})
