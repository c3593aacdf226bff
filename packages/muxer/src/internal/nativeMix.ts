/**
 * A mix window without an ffmpeg run of its own: each run of a channel's segments is decoded by a
 * long-lived decoder (`aacDecoder.ts`; or, in the `faad` mode kept to measure against, by one faad
 * per run), the runs are placed and summed here as float PCM, and the window is encoded by a
 * long-lived encoder (`aacEncoder.ts`). So a window starts no process at all.
 * It reproduces `mixWindow`'s graph: samples decoded back to back from the run's first frame,
 * placed at the run's offset, mono spread to both channels at −3 dB (as ffmpeg's `aformat` to
 * stereo does), summed without normalisation, the pre-roll and the encoder's priming dropped.
 * A run's first frame of samples is left out (faad does not output it; the long-lived decoder's
 * overlaps what it decoded before): it lies in the window's pre-roll unless the run starts inside
 * the window, where it is the decoder's start-up, near silence.
 *
 * Only what it reproduces exactly is done here: AAC-LC at 48 kHz, mono or stereo, in ADTS. Anything
 * else throws `NotNativeMix`, and the window is mixed by ffmpeg as before.
 */
import { spawn } from "node:child_process"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { FfmpegFailed } from "../Ffmpeg.js"
import type { AacDecoderPool } from "./aacDecoder.js"
import type { AacEncoderPool } from "./aacEncoder.js"
import { AAC_FRAME, MIX_RATE, PRE_ROLL } from "./media.js"
import { aacFragment, concat } from "./mp4.js"
import { countStart } from "./process.js"
import { adtsOfTs, NotRemuxable } from "./tsRemux.js"

/** The window is one the native mix does not reproduce (the caller mixes it with ffmpeg). */
export class NotNativeMix extends Error {}

/** One channel's run: its segments' MPEG-TS bytes, each on its own, in order. */
export interface NativeMixInput {
  readonly segments: ReadonlyArray<Uint8Array>
  /** Where the run's first sample falls, in samples from the window's start (pre-roll included). */
  readonly offset: number
}

const AAC_LC = 2
const TIMEOUT_MS = 60_000

/**
 * Runs faad over an ADTS stream: 32-bit float samples, interleaved, as many channels as it says.
 * faad writes its output in small pieces; to a file (tmpfs, usually) they cost the server one
 * read instead of hundreds of pipe reads.
 */
const faadDecode = async (faad: string, adts: Uint8Array): Promise<Float32Array> => {
  const dir = await mkdtemp(join(tmpdir(), "capture-mix-"))
  const file = join(dir, "pcm.raw")
  try {
    await new Promise<void>((resolve, reject) => {
      // -b 4: float; -f 2: raw; reads stdin ("-").
      countStart(faad, "one_shot")
      const child = spawn(faad, ["-q", "-b", "4", "-f", "2", "-o", file, "-"], {
        stdio: ["pipe", "ignore", "pipe"],
      })
      let err = ""
      const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS)
      child.stderr.on("data", (chunk: Buffer) => {
        err = (err + chunk.toString("utf8")).slice(-1_000)
      })
      child.on("error", (error) => {
        clearTimeout(timer)
        reject(error)
      })
      child.on("close", (code) => {
        clearTimeout(timer)
        if (code === 0) resolve()
        else reject(new FfmpegFailed(faad, code, err))
      })
      child.stdin.on("error", () => {})
      child.stdin.end(Buffer.from(adts.buffer, adts.byteOffset, adts.byteLength))
    })
    const bytes = await readFile(file)
    // A copy into an aligned buffer of whole samples.
    const samples = new Float32Array(Math.floor(bytes.length / 4))
    new Uint8Array(samples.buffer).set(bytes.subarray(0, samples.length * 4))
    return samples
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/**
 * Decodes one run (ADTS, its channel count and frames): interleaved samples from the run's second
 * frame on, in `channels` channels.
 */
export type RunDecoder = (
  adts: Uint8Array,
  frames: number,
  channels: 1 | 2,
) => Promise<{ samples: Float32Array; channels: 1 | 2 }>

/** Runs decoded by one faad process each (faad outputs mono as two equal channels). */
export const faadRunDecoder =
  (faad: string): RunDecoder =>
  async (adts) => ({ samples: await faadDecode(faad, adts), channels: 2 })

/** Runs decoded by the long-lived decoders of `pool`, their first frame dropped. */
export const pooledRunDecoder =
  (pool: AacDecoderPool): RunDecoder =>
  async (adts, frames, channels) => ({
    samples: (await pool.decode(adts, frames, channels)).subarray(AAC_FRAME * channels),
    channels,
  })

/**
 * Frames decoded before the first one the window uses: the decoder's output of a run's first
 * frame is dropped, and a frame's samples depend on the frame before it (overlap-add).
 */
const WARM_UP_FRAMES = 2

/**
 * A run's ADTS from the frame the window needs (less `WARM_UP_FRAMES`), its channel count, frames,
 * and where its first sample now falls; `NotNativeMix` when it is not what this mixes. A run starts
 * with the segment before the window (the plan's warm-up), of which only the last frames fall in
 * the pre-roll: the rest is not decoded.
 */
const runAdts = (
  input: NativeMixInput,
): { adts: Uint8Array; channels: 1 | 2; frames: number; offset: number } => {
  const parts = input.segments.map((ts) => {
    try {
      return adtsOfTs(ts)
    } catch (error) {
      if (error instanceof NotRemuxable) throw new NotNativeMix(error.message)
      throw error
    }
  })
  const first = parts[0]
  if (first === undefined) throw new NotNativeMix("an empty run")
  for (const p of parts) {
    if (p.profile !== AAC_LC) throw new NotNativeMix(`AAC object type ${p.profile}`)
    if (p.sampleRate !== MIX_RATE) throw new NotNativeMix(`${p.sampleRate} Hz`)
    if (p.channels !== 1 && p.channels !== 2) throw new NotNativeMix(`${p.channels} channels`)
    if (p.channels !== first.channels) throw new NotNativeMix("channel count changes within a run")
  }
  // Frame j covers samples [offset + j·1024, offset + (j + 1)·1024) of the window's buffer.
  const firstNeeded = Math.max(0, Math.floor(-input.offset / AAC_FRAME))
  let skip = Math.max(0, firstNeeded - WARM_UP_FRAMES)
  const kept: Uint8Array[] = []
  let frames = 0
  let offset = input.offset
  for (const p of parts) {
    if (skip >= p.frames.length) {
      skip -= p.frames.length
      offset += p.frames.length * AAC_FRAME
      continue
    }
    // An ADTS frame starts where the one before it ends (its payload is the frame's end).
    const previous = skip === 0 ? undefined : (p.frames[skip - 1] as Uint8Array)
    const from = previous === undefined ? 0 : previous.byteOffset + previous.byteLength - p.adts.byteOffset
    kept.push(p.adts.subarray(from))
    frames += p.frames.length - skip
    offset += skip * AAC_FRAME
    skip = 0
  }
  return { adts: concat(kept), channels: first.channels as 1 | 2, frames, offset }
}

/**
 * The window's PCM (interleaved stereo, `PRE_ROLL + length` samples): every run decoded, placed
 * and summed.
 */
export const mixPcm = async (
  decode: RunDecoder,
  inputs: ReadonlyArray<NativeMixInput>,
  length: number,
): Promise<Float32Array> => {
  const total = PRE_ROLL + length
  const runs = inputs.map((input) => ({ input, ...runAdts(input) }))
  const out = new Float32Array(total * 2)
  // The runs' decoders at once: a window waits for its slowest channel, not their sum.
  const decodedRuns = await Promise.all(runs.map((run) => decode(run.adts, run.frames, run.channels)))
  for (const [r, run] of runs.entries()) {
    const { samples, channels } = decodedRuns[r] as Awaited<ReturnType<RunDecoder>>
    // Samples start one frame after the run's (its first frame is left out: see the top).
    const frames = samples.length / (channels * AAC_FRAME)
    if (!Number.isInteger(frames) || frames >= run.frames)
      throw new NotNativeMix(`the decoder gave ${samples.length} samples for ${run.frames} frames`)
    const gain = run.channels === 1 ? Math.SQRT1_2 : 1
    const start = run.offset + AAC_FRAME
    const count = samples.length / channels
    const from = Math.max(0, -start)
    const to = Math.min(count, total - start)
    for (let i = from; i < to; i++) {
      const at = 2 * (start + i)
      const left = samples[channels * i] as number
      const right = channels === 2 ? (samples[2 * i + 1] as number) : left
      out[at] = (out[at] as number) + left * gain
      out[at + 1] = (out[at + 1] as number) + right * gain
    }
  }
  return out
}

/**
 * Mixes and encodes one window as `mixWindow` does: one fragment of the last `length / 1024`
 * frames, the pre-roll dropped.
 */
export const mixWindowNative = async (
  decode: RunDecoder,
  encoders: AacEncoderPool,
  inputs: ReadonlyArray<NativeMixInput>,
  length: number,
): Promise<{ fragment: Uint8Array; frames: number }> => {
  const pcm = await mixPcm(decode, inputs, length)
  const frames = await encoders.encode(pcm)
  const kept = frames.slice(PRE_ROLL / AAC_FRAME)
  if (kept.length !== length / AAC_FRAME)
    throw new Error(`mix produced ${kept.length} frames, wanted ${length / AAC_FRAME}`)
  return { fragment: aacFragment(kept), frames: kept.length }
}
