/**
 * A long-lived AAC encoder: one ffmpeg reading 48 kHz stereo float PCM on stdin and writing ADTS
 * on stdout, kept running across mix windows and sessions, so a window costs no process start.
 *
 * Frames map to input by count: ffmpeg's AAC encoder writes one priming frame, then output frame
 * k + 1 encodes input samples [k·1024, (k + 1)·1024). A window is written whole (its pre-roll
 * included), followed by a little silence that pushes its last frames through the encoder's
 * lookahead and ffmpeg's buffers; the frames of the window are then taken by their index. What the
 * encoder saw before (another window, another session) only shapes its rate control: each window
 * still starts with its own pre-roll, as when it had a process of its own.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process"
import type { Readable, Writable } from "node:stream"
import { FfmpegFailed } from "../Ffmpeg.js"
import { AAC_FRAME, MIX_RATE } from "./media.js"
import { countStart } from "./process.js"

/** Bytes of one frame of input (1024 stereo float samples). */
const FRAME_BYTES = AAC_FRAME * 2 * 4
/** Silence written after a window; more follows while its last frames are still held back. */
const FLUSH_FRAMES = 2
/** How long to wait for output before writing another frame of silence. */
const NUDGE_MS = 20
/** A window that takes this long means a stuck encoder: it is killed and the next starts anew. */
const TIMEOUT_MS = 30_000
const SILENCE = new Uint8Array(FRAME_BYTES)

const args = [
  ...["-hide_banner", "-v", "error", "-nostdin"],
  // No probing: raw PCM has nothing to find, and probing would hold back the first seconds.
  ...["-probesize", "32", "-analyzeduration", "0"],
  ...["-f", "f32le", "-ar", String(MIX_RATE), "-ac", "2", "-i", "pipe:0"],
  ...["-c:a", "aac", "-b:a", "128k", "-ar", String(MIX_RATE), "-ac", "2"],
  ...["-flush_packets", "1", "-f", "adts", "pipe:1"],
]

interface Waiter {
  /** Output frames (priming included) needed before it can be answered. */
  readonly until: number
  readonly resolve: () => void
  readonly reject: (error: Error) => void
}

/** One ffmpeg process; `encode` calls are run one at a time. */
export class AacEncoder {
  private child: ChildProcessByStdio<Writable, Readable, Readable> | undefined
  /** Input frames written to the current process. */
  private written = 0
  /** Output frames parsed so far, from index `base` on (earlier ones were handed out or dropped). */
  private frames: Uint8Array[] = []
  private base = 0
  private pending: Buffer = Buffer.alloc(0)
  private stderr = ""
  private waiter: Waiter | undefined
  private queue: Promise<unknown> = Promise.resolve()
  private closed = false
  /** ffmpeg processes started so far (one, unless one failed). */
  processesStarted = 0

  constructor(private readonly ffmpeg: string) {}

  /**
   * Encodes `pcm` (interleaved stereo float at 48 kHz, a whole number of 1024-sample frames) and
   * returns its frames, one per 1024 samples, in order.
   */
  encode(pcm: Float32Array): Promise<Uint8Array[]> {
    const result = this.queue.then(() => this.encodeNow(pcm))
    this.queue = result.catch(() => undefined)
    return result
  }

  /** Kills the running process, as a crash would (tests): the next window starts another. */
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

  private async encodeNow(pcm: Float32Array): Promise<Uint8Array[]> {
    if (this.closed) throw new Error("the AAC encoder is closed")
    const count = pcm.length / (2 * AAC_FRAME)
    if (!Number.isInteger(count) || count === 0) throw new Error(`not whole frames: ${pcm.length} samples`)
    const child = this.child ?? this.spawn()
    const first = this.written
    // Output frame k + 1 is input frame k.
    const from = first + 1
    const until = from + count
    const done = new Promise<void>((resolve, reject) => {
      this.waiter = { until, resolve, reject }
    })
    this.write(child, Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength))
    for (let i = 0; i < FLUSH_FRAMES; i++) this.write(child, SILENCE)
    this.check()
    const started = Date.now()
    const nudge = setInterval(() => {
      if (Date.now() - started > TIMEOUT_MS) {
        this.fail(child, new Error(`the AAC encoder gave no output for ${TIMEOUT_MS} ms`))
        return
      }
      // Still held back (start-up, a busy machine): push a little more silence through.
      if (this.child === child) this.write(child, SILENCE)
    }, NUDGE_MS)
    try {
      await done
    } finally {
      clearInterval(nudge)
    }
    const out = this.frames.slice(from - this.base, until - this.base)
    // Nothing before `until` is needed again.
    this.frames = this.frames.slice(until - this.base)
    this.base = until
    return out
  }

  private spawn(): ChildProcessByStdio<Writable, Readable, Readable> {
    const child = spawn(this.ffmpeg, args, { stdio: ["pipe", "pipe", "pipe"] })
    countStart(this.ffmpeg, "long_lived")
    this.processesStarted++
    this.child = child
    this.written = 0
    this.frames = []
    this.base = 0
    this.pending = Buffer.alloc(0)
    this.stderr = ""
    child.stdout.on("data", (chunk: Buffer) => {
      if (this.child !== child) return
      this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk])
      this.parse()
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

  private write(child: ChildProcessByStdio<Writable, Readable, Readable>, bytes: Uint8Array): void {
    child.stdin.write(bytes)
    this.written += bytes.length / FRAME_BYTES
  }

  /** Splits complete ADTS frames off the output read so far (headers dropped). */
  private parse(): void {
    const b = this.pending
    let p = 0
    while (p + 7 <= b.length) {
      if (b[p] !== 0xff || ((b[p + 1] as number) & 0xf0) !== 0xf0) {
        if (this.child !== undefined) this.fail(this.child, new Error(`no ADTS sync in the encoder's output`))
        return
      }
      const length =
        (((b[p + 3] as number) & 3) << 11) | ((b[p + 4] as number) << 3) | ((b[p + 5] as number) >> 5)
      if (p + length > b.length) break
      const header = ((b[p + 1] as number) & 1) === 1 ? 7 : 9
      // A copy: the chunk it came in is not kept.
      this.frames.push(Uint8Array.from(b.subarray(p + header, p + length)))
      p += length
    }
    this.pending = b.subarray(p)
    // Frames before the current window (priming, flush silence) are never asked for.
    if (this.waiter === undefined && this.frames.length > 64) {
      this.base += this.frames.length
      this.frames = []
    }
  }

  private check(): void {
    const waiter = this.waiter
    if (waiter !== undefined && this.base + this.frames.length >= waiter.until) {
      this.waiter = undefined
      waiter.resolve()
    }
  }

  /** The process failed or ended: whoever waits gets the error, the next window a new process. */
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

/** `size` encoders; each `encode` goes to one that is free (or the least busy). */
export class AacEncoderPool {
  private readonly encoders: Array<{ encoder: AacEncoder; busy: number }>

  constructor(ffmpeg: string, size: number) {
    this.encoders = Array.from({ length: Math.max(1, size) }, () => ({
      encoder: new AacEncoder(ffmpeg),
      busy: 0,
    }))
  }

  async encode(pcm: Float32Array): Promise<Uint8Array[]> {
    const slot = this.encoders.reduce((a, b) => (b.busy < a.busy ? b : a))
    slot.busy++
    try {
      return await slot.encoder.encode(pcm)
    } finally {
      slot.busy--
    }
  }

  close(): void {
    for (const { encoder } of this.encoders) encoder.close()
  }
}
