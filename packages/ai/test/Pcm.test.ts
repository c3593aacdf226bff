/** Segment decoding: faad (the AAC demuxed here) and ffmpeg give the same samples at the same times. */
import { findOnPath } from "@capture/binaries"
import { festivalAvailable, type SpeechRecording, speechRecording } from "@capture/testkit"
import { beforeAll, describe, expect, it } from "vitest"
import { adtsFormatOf, adtsOfMpegTs, NotAdtsAudio } from "../src/audio/MpegTsAudio.js"
import { decodeToPcm, SAMPLE_RATE } from "../src/audio/Pcm.js"
import { toMono16k } from "../src/audio/Resample.js"
import { ffmpeg } from "./support.js"

const faad = findOnPath("faad")

/** The lag (samples, within ±maxLag) at which `b` best matches `a`, and their correlation there. */
const bestLag = (a: Int16Array, b: Int16Array, maxLag: number) => {
  let best = { lag: 0, correlation: -1 }
  for (let lag = -maxLag; lag <= maxLag; lag++) {
    let ab = 0
    let aa = 0
    let bb = 0
    for (let i = Math.max(0, lag); i < Math.min(a.length, b.length + lag); i++) {
      const x = a[i] as number
      const y = b[i - lag] as number
      ab += x * y
      aa += x * x
      bb += y * y
    }
    const correlation = aa === 0 || bb === 0 ? 0 : ab / Math.sqrt(aa * bb)
    if (correlation > best.correlation) best = { lag, correlation }
  }
  return best
}

const energy = (pcm: Int16Array) => pcm.reduce((sum, s) => sum + s * s, 0) / Math.max(1, pcm.length)

describe("toMono16k", () => {
  it("averages channels and keeps a tone in the pass band at its level, without a delay", () => {
    const rate = 48_000
    const frames = rate
    const stereo = new Int16Array(frames * 2)
    for (let i = 0; i < frames; i++) {
      const v = Math.round(10_000 * Math.sin((2 * Math.PI * 1_000 * i) / rate))
      stereo[2 * i] = v
      stereo[2 * i + 1] = v
    }
    const mono = toMono16k(stereo, 2, rate, SAMPLE_RATE)
    expect(mono.length).toBe(SAMPLE_RATE)
    const expected = Int16Array.from({ length: SAMPLE_RATE }, (_, n) =>
      Math.round(10_000 * Math.sin((2 * Math.PI * 1_000 * n) / SAMPLE_RATE)),
    )
    const middle = (pcm: Int16Array) => pcm.subarray(1_000, SAMPLE_RATE - 1_000)
    expect(bestLag(middle(mono), middle(expected), 8)).toMatchObject({ lag: 0 })
    expect(Math.sqrt(energy(middle(mono)) / energy(middle(expected)))).toBeCloseTo(1, 1)
  })

  it("filters out what the new rate cannot hold (a 12 kHz tone at 48 kHz)", () => {
    const rate = 48_000
    const tone = Int16Array.from({ length: rate }, (_, i) =>
      Math.round(10_000 * Math.sin((2 * Math.PI * 12_000 * i) / rate)),
    )
    const mono = toMono16k(tone, 1, rate, SAMPLE_RATE)
    expect(Math.sqrt(energy(mono.subarray(100, -100)))).toBeLessThan(100)
  })
})

describe.skipIf(!festivalAvailable())("decodeToPcm", () => {
  let recording: SpeechRecording
  beforeAll(async () => {
    // bootstrap.sh installs faad: missing, every test here fails rather than dropping out of the count.
    if (faad === undefined) throw new Error("faad is not installed: run scripts/bootstrap.sh")
    recording = await speechRecording(ffmpeg, ["The budget discussion is next week."], { leadMs: 500 })
  })

  it("reads the recorder's AAC out of MPEG-TS and refuses what is not", () => {
    const segment = recording.segments[0]?.bytes as Uint8Array
    const adts = adtsOfMpegTs(segment)
    expect(adts[0]).toBe(0xff)
    expect(adtsFormatOf(adts).sampleRate).toBeGreaterThan(8_000)
    expect(() => adtsOfMpegTs(new Uint8Array(400))).toThrow(NotAdtsAudio)
  })

  it("gives the same samples at the same times through faad as through ffmpeg", async () => {
    for (const segment of recording.segments) {
      const viaFfmpeg = await decodeToPcm({ ffmpeg }, segment.bytes)
      const viaFaad = await decodeToPcm({ ffmpeg, faad }, segment.bytes)
      // Within one AAC frame of length, aligned to a sample, the same sound.
      expect(Math.abs(viaFaad.length - viaFfmpeg.length)).toBeLessThanOrEqual(400)
      if (energy(viaFfmpeg) < 1_000) continue
      const { lag, correlation } = bestLag(viaFfmpeg, viaFaad, 600)
      expect(Math.abs(lag)).toBeLessThanOrEqual(2)
      expect(correlation).toBeGreaterThan(0.95)
    }
  })

  it("falls back to ffmpeg when the bytes are not ADTS in MPEG-TS", async () => {
    await expect(decodeToPcm({ ffmpeg, faad }, new Uint8Array(400))).rejects.toThrow(/ffmpeg/)
  })
})
