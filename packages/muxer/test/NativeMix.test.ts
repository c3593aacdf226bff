/**
 * The in-process mix (runs decoded by the long-lived decoders, or by faad; PCM summed here; one
 * long-lived encoder) against ffmpeg's mix graph on the same segments: the same samples before
 * encoding (up to the decoders' rounding), the same sound after; the long-lived decoder: a run's
 * samples by index, the same whatever it decoded before, one process for many runs, a new one
 * after a crash; and the long-lived encoder: frames by index across windows, likewise.
 */
import { execFile } from "node:child_process"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { findOnPath, resolveFfmpegTools } from "@capture/binaries"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AacDecoder, AacDecoderPool } from "../src/internal/aacDecoder.js"
import { AacEncoder, AacEncoderPool } from "../src/internal/aacEncoder.js"
import { AAC_FRAME, MIX_RATE, mixInit, mixWindow, mixWindowPcm, PRE_ROLL } from "../src/internal/media.js"
import { concat } from "../src/internal/mp4.js"
import {
  faadRunDecoder,
  mixPcm,
  mixWindowNative,
  NotNativeMix,
  pooledRunDecoder,
  type RunDecoder,
} from "../src/internal/nativeMix.js"
import { adtsOfTs } from "../src/internal/tsRemux.js"
import { beeper, type ChannelMedia, record } from "./fixtures.js"

const exec = promisify(execFile)
const tools = resolveFfmpegTools()
const faad = findOnPath("faad")
let dir: string
let mic: ChannelMedia
let system: ChannelMedia
const WALL = 1_700_000_000_000

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "capture-native-mix-"))
  const stereo = beeper("system_audio:default", { offsetMs: 300, seconds: 7, hz: 660 })
  ;[mic, system] = await Promise.all([
    record(dir, beeper("mic:default", { offsetMs: 0, seconds: 7, hz: 440 }), WALL),
    // A stereo channel, starting 300 ms later.
    record(dir, { ...stereo, args: [...stereo.args, "-ac", "2"] }, WALL),
  ])
})
afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

/** Each channel's segments from the first as one run, placed for a window starting at `from`. */
const runsFor = (from: number) =>
  [mic, system].map((channel) => ({
    segments: channel.segments.map((s) => s.data),
    offset: Math.round((((channel.segments[0]?.startMs ?? 0) - WALL) * MIX_RATE) / 1000) - (from - PRE_ROLL),
  }))

const rms = (a: Float32Array) => Math.sqrt(a.reduce((sum, x) => sum + x * x, 0) / a.length)

/** Decodes a mix piece (the mixed track's init + the fragment) to interleaved stereo float. */
const decodePiece = async (name: string, init: Uint8Array, fragment: Uint8Array): Promise<Float32Array> => {
  const file = join(dir, name)
  await writeFile(file, concat([init, fragment]))
  const { stdout } = await exec(tools.ffmpeg, ["-v", "error", "-i", file, "-f", "f32le", "pipe:1"], {
    encoding: "buffer",
    maxBuffer: 1e9,
  })
  return new Float32Array(Uint8Array.from(stdout).buffer)
}

/** RMS of each 10 ms of the left channel. */
const envelope = (pcm: Float32Array): number[] => {
  const block = MIX_RATE / 100
  const out: number[] = []
  for (let at = 0; (at + block) * 2 <= pcm.length; at += block) {
    let sum = 0
    for (let i = at; i < at + block; i++) sum += (pcm[2 * i] as number) ** 2
    out.push(Math.sqrt(sum / block))
  }
  return out
}

let notNativeFiles: Promise<string[]> | undefined
/** Segments of another codec and another rate (made once for every decoder's test). */
const notNative = () => {
  notNativeFiles ??= (async () => {
    const mp2 = join(dir, "mp2.ts")
    const rate = join(dir, "44k.ts")
    await Promise.all([
      exec(tools.ffmpeg, [
        ...["-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:d=1"],
        ...["-c:a", "mp2", "-f", "mpegts", mp2],
      ]),
      exec(tools.ffmpeg, [
        ...["-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:d=1"],
        ...["-c:a", "aac", "-f", "mpegts", rate],
      ]),
    ])
    return [mp2, rate]
  })()
  return notNativeFiles
}

const decoderPool = new AacDecoderPool(tools.ffmpeg, 1)
afterAll(() => decoderPool.close())
const decoders: ReadonlyArray<readonly [string, RunDecoder | undefined]> = [
  ["long-lived decoders", pooledRunDecoder(decoderPool)],
  ["faad", faad === undefined ? undefined : faadRunDecoder(faad)],
]

describe.each(decoders)("native mix, runs decoded by %s", (_, decoder) => {
  const decode = decoder as RunDecoder
  // bootstrap.sh installs faad: missing, this fails rather than dropping out of the count.
  if (decoder === undefined)
    it("has faad to decode with", () => {
      expect.fail("faad is not installed: run scripts/bootstrap.sh --test")
    })
  else {
    for (const [what, from] of [
      ["a window inside the recording (runs start before it)", 96 * AAC_FRAME],
      ["the first window (a run starts inside it)", 0],
    ] as const)
      it(`sums ${what} as ffmpeg's mix graph does`, async () => {
        const length = 96 * AAC_FRAME
        const runs = runsFor(from)
        const native = await mixPcm(decode, runs, length)
        const reference = await mixWindowPcm(
          tools,
          runs.map((r) => ({ ts: concat(r.segments), offset: r.offset })),
          length,
        )
        expect(native.length).toBe(reference.length)
        expect(rms(reference)).toBeGreaterThan(0.01)
        const difference = native.map((x, i) => x - (reference[i] as number))
        // faad and ffmpeg's decoder round differently: about −74 dB apart on these tones.
        expect(rms(difference)).toBeLessThan(rms(reference) / 100)
      })

    it("encodes a window that sounds as ffmpeg's does, beeps in the same place", async () => {
      const from = 96 * AAC_FRAME
      const length = 96 * AAC_FRAME
      const runs = runsFor(from)
      const pool = new AacEncoderPool(tools.ffmpeg, 1)
      try {
        const init = await mixInit(tools)
        const native = await mixWindowNative(decode, pool, runs, length)
        const reference = await mixWindow(
          tools,
          runs.map((r) => ({ ts: concat(r.segments), offset: r.offset })),
          length,
        )
        expect(native.frames).toBe(96)
        const [a, b] = await Promise.all([
          decodePiece("native.mp4", init, native.fragment),
          decodePiece("ffmpeg.mp4", init, reference.fragment),
        ])
        const ea = envelope(a)
        const eb = envelope(b)
        expect(ea.length).toBe(eb.length)
        const loud = eb.map((v, i) => [v, i] as const).filter(([v]) => v > 0.1)
        expect(loud.length).toBeGreaterThan(5)
        for (const [v, i] of loud) expect(Math.abs((ea[i] as number) - v)).toBeLessThan(0.05)
        const quietNative = ea.filter((_, i) => (eb[i] as number) < 0.001)
        expect(Math.max(...quietNative)).toBeLessThan(0.02)
      } finally {
        pool.close()
      }
    })

    it("leaves what it does not reproduce to ffmpeg: another codec, another rate", async () => {
      const { readFile } = await import("node:fs/promises")
      for (const file of await notNative())
        await expect(
          mixPcm(decode, [{ segments: [await readFile(file)], offset: 0 }], 96 * AAC_FRAME),
        ).rejects.toBeInstanceOf(NotNativeMix)
    })
  }
})

describe("long-lived AAC decoder", () => {
  /** A channel's segments as one ADTS run. */
  const runOf = (channel: ChannelMedia) => {
    const parts = channel.segments.map((s) => adtsOfTs(s.data))
    return {
      adts: concat(parts.map((p) => p.adts)),
      frames: parts.reduce((n, p) => n + p.frames.length, 0),
      channels: parts[0]?.channels as 1 | 2,
    }
  }
  /** The same run decoded by ffmpeg on its own (a fresh decoder). */
  const alone = async (name: string, adts: Uint8Array) => {
    const file = join(dir, name)
    await writeFile(file, adts)
    const { stdout } = await exec(
      tools.ffmpeg,
      ["-v", "error", "-f", "aac", "-i", file, "-f", "f32le", "pipe:1"],
      {
        encoding: "buffer",
        maxBuffer: 1e8,
      },
    )
    return new Float32Array(Uint8Array.from(stdout).buffer)
  }

  /**
   * The same samples from the second frame on (the first overlaps the decoder's previous run),
   * up to the noise AAC substitutes for some bands (PNS), whose random sequence runs on across
   * runs: more than 40 dB below the signal (−66 dB measured on these tones).
   */
  const expectSameFromSecondFrame = (samples: Float32Array, reference: Float32Array, channels: number) => {
    expect(samples.length).toBe(reference.length)
    const from = AAC_FRAME * channels
    const a = samples.subarray(from)
    const b = reference.subarray(from)
    expect(rms(b)).toBeGreaterThan(0.01)
    expect(rms(a.map((x, i) => x - (b[i] as number)))).toBeLessThan(rms(b) / 100)
  }

  // Eight ffmpeg runs: past the default 30 s when the 2 cores are shared with other work.
  it("answers each run with its own samples, whatever it decoded before; one process, a new one after a crash", {
    timeout: 90_000,
  }, async () => {
    const monoRun = runOf(mic)
    const stereoRun = runOf(system)
    expect([monoRun.channels, stereoRun.channels]).toEqual([1, 2])
    const references = {
      1: await alone("mono.aac", monoRun.adts),
      2: await alone("stereo.aac", stereoRun.adts),
    }
    const mono = new AacDecoder(tools.ffmpeg, 1)
    const stereo = new AacDecoder(tools.ffmpeg, 2)
    try {
      for (const [decoder, run] of [
        [mono, monoRun],
        [stereo, stereoRun],
        [mono, monoRun],
      ] as const) {
        const samples = await decoder.decode(run.adts, run.frames)
        expect(samples.length).toBe(run.frames * AAC_FRAME * run.channels)
        expectSameFromSecondFrame(samples, references[run.channels], run.channels)
      }
      // A run that starts mid-stream (the mic from its third segment), after other runs.
      const later = adtsOfTs(mic.segments[2]?.data as Uint8Array)
      const part = await mono.decode(later.adts, later.frames.length)
      expectSameFromSecondFrame(part, await alone("part.aac", later.adts), 1)
      expect(mono.processesStarted).toBe(1)
      expect(stereo.processesStarted).toBe(1)
      await mono.kill()
      const after = await mono.decode(monoRun.adts, monoRun.frames)
      expectSameFromSecondFrame(after, references[1], 1)
      expect(mono.processesStarted).toBe(2)
    } finally {
      mono.close()
      stereo.close()
    }
  })

  it("fails a run it cannot decode instead of miscounting, and decodes the next in a new process", async () => {
    const decoder = new AacDecoder(tools.ffmpeg, 1)
    try {
      const run = runOf(mic)
      const damaged = Uint8Array.from(run.adts)
      // Garbage inside the first frames' payloads (headers intact).
      for (let i = 40; i < 400; i++) damaged[i] = (i * 73) & 0xff
      await expect(decoder.decode(damaged, run.frames)).rejects.toThrow()
      const samples = await decoder.decode(run.adts, run.frames)
      expect(samples.length).toBe(run.frames * AAC_FRAME)
      expect(decoder.processesStarted).toBe(2)
    } finally {
      decoder.close()
    }
  })
})

describe("long-lived AAC encoder", () => {
  /** `frames` frames of silence with a loud 1 kHz tone in frame `loud`. */
  const window = (frames: number, loud: number) => {
    const pcm = new Float32Array(frames * AAC_FRAME * 2)
    for (let i = loud * AAC_FRAME; i < (loud + 1) * AAC_FRAME; i++)
      pcm[2 * i] = pcm[2 * i + 1] = 0.5 * Math.sin((2 * Math.PI * 1000 * i) / MIX_RATE)
    return pcm
  }
  /** The frame each 1024 samples of input decoded to, loudest first. */
  const loudest = async (name: string, frames: ReadonlyArray<Uint8Array>) => {
    // ADTS around each raw frame (AAC-LC, 48 kHz, stereo), so ffmpeg decodes them as a stream.
    const adts = concat(
      frames.flatMap((f) => {
        const length = f.length + 7
        const header = Uint8Array.from([
          0xff,
          0xf1,
          (1 << 6) | (3 << 2),
          (2 << 6) | (length >> 11),
          (length >> 3) & 0xff,
          ((length & 7) << 5) | 0x1f,
          0xfc,
        ])
        return [header, f]
      }),
    )
    const file = join(dir, name)
    await writeFile(file, adts)
    const { stdout } = await exec(
      tools.ffmpeg,
      ["-v", "error", "-f", "aac", "-i", file, "-f", "f32le", "pipe:1"],
      {
        encoding: "buffer",
        maxBuffer: 1e8,
      },
    )
    const pcm = new Float32Array(Uint8Array.from(stdout).buffer)
    const energy = Array.from({ length: frames.length }, (_, k) =>
      pcm.subarray(k * AAC_FRAME * 2, (k + 1) * AAC_FRAME * 2).reduce((s, x) => s + x * x, 0),
    )
    return energy.indexOf(Math.max(...energy))
  }

  it("answers each window with its own frames, by index, from one process; a new one after a crash", {
    timeout: 120_000,
  }, async () => {
    const encoder = new AacEncoder(tools.ffmpeg)
    try {
      for (const [n, loud] of [
        [12, 3],
        [40, 17],
        [8, 6],
      ] as const) {
        const frames = await encoder.encode(window(n, loud))
        expect(frames).toHaveLength(n)
        // Decoded as a stream of its own, block k is the window's frame k (its first block has no
        // frame before it to overlap, as in a piece played first).
        expect(await loudest(`w${n}.aac`, frames)).toBe(loud)
      }
      expect(encoder.processesStarted).toBe(1)
      await encoder.kill()
      const after = await encoder.encode(window(20, 11))
      expect(after).toHaveLength(20)
      expect(await loudest("after.aac", after)).toBe(11)
      expect(encoder.processesStarted).toBe(2)
    } finally {
      encoder.close()
    }
  })
})
