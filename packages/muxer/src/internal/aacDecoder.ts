/**
 * A long-lived AAC decoder: one ffmpeg reading ADTS on stdin and writing float PCM on stdout, kept
 * running across mix windows and sessions, so decoding a window's runs costs no process start
 * (before: one faad per channel per window, ~60 process starts per recorded minute).
 *
 * Frames map to output by count: ffmpeg's AAC decoder writes one frame of samples per input frame,
 * the first one included. Each run is written whole, followed by silent frames that push its last
 * samples through ffmpeg's buffers; its samples are then taken by frame index. One process decodes
 * one channel count (mono or stereo), so its output format never changes.
 *
 * A run's first output frame overlaps whatever the process decoded before it; the mix drops that
 * frame (as it drops faad's, which omits it), and from the second frame on a frame's samples depend
 * only on the run's own frames. Anything on ffmpeg's stderr during a run (a damaged frame, which
 * would shift the count) fails the run and ends the process: the caller mixes that window by ffmpeg.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process"
import type { Readable, Writable } from "node:stream"
import { FfmpegFailed } from "../Ffmpeg.js"
import { AAC_FRAME, MIX_RATE } from "./media.js"
import { countStart } from "./process.js"

/** Silence written after a run; more follows while its last frames are still held back. */
const FLUSH_FRAMES = 2
/** How long to wait for output before writing another silent frame. */
const NUDGE_MS = 20
/** A run that takes this long means a stuck decoder: it is killed and the next starts anew. */
const TIMEOUT_MS = 30_000
/** ADTS sampling frequency index of 48 kHz. */
const RATE_INDEX_48K = 3

/** Writes bits most significant first. */
class BitWriter {
  private readonly bits: number[] = []
  put(value: number, width: number): void {
    for (let i = width - 1; i >= 0; i--) this.bits.push((value >> i) & 1)
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(Math.ceil(this.bits.length / 8))
    this.bits.forEach((bit, i) => {
      out[i >> 3] = (out[i >> 3] as number) | (bit << (7 - (i & 7)))
    })
    return out
  }
}

/**
 * One ADTS frame of AAC-LC silence at 48 kHz: each channel a long window with no scale factor
 * bands (no spectral data), then END.
 */
export const silentAdtsFrame = (channels: 1 | 2): Uint8Array => {
  const body = new BitWriter()
  const channelStream = () => {
    body.put(100, 8) // global_gain (unused: no bands)
    body.put(0, 1) // ics_reserved_bit
    body.put(0, 2) // window_sequence: ONLY_LONG
    body.put(0, 1) // window_shape: sine
    body.put(0, 6) // max_sfb
    body.put(0, 1) // predictor_data_present
    body.put(0, 3) // pulse, tns, gain control: absent
  }
  if (channels === 1) {
    body.put(0, 3) // SCE
    body.put(0, 4)
    channelStream()
  } else {
    body.put(1, 3) // CPE
    body.put(0, 4)
    body.put(0, 1) // common_window
    channelStream()
    channelStream()
  }
  body.put(7, 3) // END
  const raw = body.bytes()
  const length = 7 + raw.length
  const header = new BitWriter()
  header.put(0xfff, 12)
  header.put(0, 1) // MPEG-4
  header.put(0, 2) // layer
  header.put(1, 1) // no CRC
  header.put(1, 2) // AAC-LC (object type 2, minus one)
  header.put(RATE_INDEX_48K, 4)
  header.put(0, 1) // private
  header.put(channels, 3)
  header.put(0, 4) // original, home, copyright bits
  header.put(length, 13)
  header.put(0x7ff, 11) // buffer fullness: variable rate
  header.put(0, 2) // one raw data block
  const frame = new Uint8Array(length)
  frame.set(header.bytes(), 0)
  frame.set(raw, 7)
  return frame
}

const argsFor = (channels: 1 | 2) => [
  ...["-hide_banner", "-v", "error", "-nostdin"],
  // The format is named and known: probing would hold back the first frames.
  ...["-probesize", "32", "-analyzeduration", "0", "-f", "aac", "-i", "pipe:0"],
  ...["-f", "f32le", "-ar", String(MIX_RATE), "-ac", String(channels), "-flush_packets", "1", "pipe:1"],
]

interface Waiter {
  /** Output bytes needed before it can be answered. */
  readonly until: number
  readonly resolve: () => void
  readonly reject: (error: Error) => void
}

/** One ffmpeg process decoding `channels`-channel AAC-LC at 48 kHz; `decode` calls run one at a time. */
export class AacDecoder {
  private child: ChildProcessByStdio<Writable, Readable, Readable> | undefined
  /** Input frames written to the current process. */
  private written = 0
  /** Output bytes received from the current process; `chunks` hold those from `base` on. */
  private received = 0
  private chunks: Buffer[] = []
  private base = 0
  private stderr = ""
  private waiter: Waiter | undefined
  private queue: Promise<unknown> = Promise.resolve()
  private closed = false
  private readonly silence: Uint8Array
  private readonly frameBytes: number
  /** ffmpeg processes started so far (one, unless one failed). */
  processesStarted = 0

  constructor(
    private readonly ffmpeg: string,
    readonly channels: 1 | 2,
  ) {
    this.silence = silentAdtsFrame(channels)
    this.frameBytes = AAC_FRAME * channels * 4
  }

  /**
   * Decodes `frames` ADTS frames (`adts`, AAC-LC 48 kHz with this decoder's channel count) and
   * returns their samples, interleaved float, one frame of 1024 per input frame, in order.
   */
  decode(adts: Uint8Array, frames: number): Promise<Float32Array> {
    const result = this.queue.then(() => this.decodeNow(adts, frames))
    this.queue = result.catch(() => undefined)
    return result
  }

  /** Kills the running process, as a crash would (tests): the next run starts another. */
  async kill(): Promise<void> {
    const child = this.child
    if (child === undefined) return
    const closed = new Promise((resolve) => child.once("close", resolve))
    child.kill("SIGKILL")
    await closed
  }

  /** Ends the process (its stdin closed: it exits by itself). */
  close(): void {
    this.closed = true
    this.child?.stdin.end()
    this.child = undefined
  }

  private async decodeNow(adts: Uint8Array, frames: number): Promise<Float32Array> {
    if (this.closed) throw new Error("the AAC decoder is closed")
    if (frames <= 0) return new Float32Array(0)
    const child = this.child ?? this.spawn()
    const from = this.written * this.frameBytes
    const until = from + frames * this.frameBytes
    this.stderr = ""
    const done = new Promise<void>((resolve, reject) => {
      this.waiter = { until, resolve, reject }
    })
    child.stdin.write(adts)
    this.written += frames
    for (let i = 0; i < FLUSH_FRAMES; i++) this.writeSilence(child)
    this.check()
    const started = Date.now()
    const nudge = setInterval(() => {
      if (Date.now() - started > TIMEOUT_MS) {
        this.fail(child, new FfmpegFailed(this.ffmpeg, null, `no output for ${TIMEOUT_MS} ms`))
        return
      }
      // Still held back (start-up, a busy machine): push a little more silence through.
      if (this.child === child) this.writeSilence(child)
    }, NUDGE_MS)
    try {
      await done
    } finally {
      clearInterval(nudge)
    }
    // An error message about this run's frames means the count may be off: not trusted.
    if (this.stderr.trim() !== "") {
      const message = this.stderr
      this.fail(child, new FfmpegFailed(this.ffmpeg, null, message))
      throw new FfmpegFailed(this.ffmpeg, null, message)
    }
    const bytes = this.take(from, until)
    const samples = new Float32Array(bytes.length / 4)
    new Uint8Array(samples.buffer).set(bytes)
    return samples
  }

  /** Bytes [from, until) of the output; everything before `until` is dropped. */
  private take(from: number, until: number): Buffer {
    const all = Buffer.concat(this.chunks)
    const out = all.subarray(from - this.base, until - this.base)
    this.chunks = [all.subarray(until - this.base)]
    this.base = until
    return out
  }

  private spawn(): ChildProcessByStdio<Writable, Readable, Readable> {
    const child = spawn(this.ffmpeg, argsFor(this.channels), { stdio: ["pipe", "pipe", "pipe"] })
    countStart(this.ffmpeg, "long_lived")
    this.processesStarted++
    this.child = child
    this.written = 0
    this.received = 0
    this.chunks = []
    this.base = 0
    this.stderr = ""
    child.stdout.on("data", (chunk: Buffer) => {
      if (this.child !== child) return
      this.received += chunk.length
      if (this.waiter === undefined) {
        // Silence after a run: never asked for.
        this.chunks = []
        this.base = this.received
      } else this.chunks.push(chunk)
      this.check()
    })
    child.stderr.on("data", (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString("utf8")).slice(-2_000)
    })
    child.stdin.on("error", () => {})
    child.on("error", (error) => this.fail(child, error))
    child.on("close", (code) => this.fail(child, new FfmpegFailed(this.ffmpeg, code, this.stderr)))
    return child
  }

  private writeSilence(child: ChildProcessByStdio<Writable, Readable, Readable>): void {
    child.stdin.write(this.silence)
    this.written++
  }

  private check(): void {
    const waiter = this.waiter
    if (waiter !== undefined && this.received >= waiter.until) {
      this.waiter = undefined
      waiter.resolve()
    }
  }

  /** The process failed or ended: whoever waits gets the error, the next run a new process. */
  private fail(child: ChildProcessByStdio<Writable, Readable, Readable>, error: Error): void {
    if (this.child !== child && this.child !== undefined) return
    if (this.child === child) {
      this.child = undefined
      child.kill("SIGKILL")
    }
    const waiter = this.waiter
    this.waiter = undefined
    waiter?.reject(error)
  }
}

/** `size` decoders per channel count; each `decode` goes to a free one (or the least busy). */
export class AacDecoderPool {
  private readonly decoders = new Map<1 | 2, Array<{ decoder: AacDecoder; busy: number }>>()

  constructor(
    private readonly ffmpeg: string,
    private readonly size: number,
  ) {}

  async decode(adts: Uint8Array, frames: number, channels: 1 | 2): Promise<Float32Array> {
    let slots = this.decoders.get(channels)
    if (slots === undefined) {
      slots = Array.from({ length: Math.max(1, this.size) }, () => ({
        decoder: new AacDecoder(this.ffmpeg, channels),
        busy: 0,
      }))
      this.decoders.set(channels, slots)
    }
    const slot = slots.reduce((a, b) => (b.busy < a.busy ? b : a))
    slot.busy++
    try {
      return await slot.decoder.decode(adts, frames)
    } finally {
      slot.busy--
    }
  }

  /** Every decoder started so far (tests). */
  get all(): ReadonlyArray<AacDecoder> {
    return [...this.decoders.values()].flat().map((s) => s.decoder)
  }

  close(): void {
    for (const decoder of this.all) decoder.close()
  }
}
