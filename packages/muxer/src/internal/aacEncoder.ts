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
import { LeastBusyPool, LongLivedFfmpeg } from "./longLivedFfmpeg.js"
import { AAC_FRAME, MIX_RATE } from "./media.js"

/** Bytes of one frame of input (1024 stereo float samples). */
const FRAME_BYTES = AAC_FRAME * 2 * 4

const args = [
  ...["-hide_banner", "-v", "error", "-nostdin"],
  // No probing: raw PCM has nothing to find, and probing would hold back the first seconds.
  ...["-probesize", "32", "-analyzeduration", "0"],
  ...["-f", "f32le", "-ar", String(MIX_RATE), "-ac", "2", "-i", "pipe:0"],
  ...["-c:a", "aac", "-b:a", "128k", "-ar", String(MIX_RATE), "-ac", "2"],
  ...["-flush_packets", "1", "-f", "adts", "pipe:1"],
]

/** One ffmpeg process; `encode` calls are run one at a time. */
export class AacEncoder extends LongLivedFfmpeg {
  /** Output frames parsed so far, from index `base` on (earlier ones were handed out or dropped). */
  private frames: Uint8Array[] = []
  private base = 0
  private pending: Buffer = Buffer.alloc(0)

  constructor(ffmpeg: string) {
    super(ffmpeg, args, "AAC encoder", new Uint8Array(FRAME_BYTES))
  }

  /**
   * Encodes `pcm` (interleaved stereo float at 48 kHz, a whole number of 1024-sample frames) and
   * returns its frames, one per 1024 samples, in order.
   */
  encode(pcm: Float32Array): Promise<Uint8Array[]> {
    const count = pcm.length / (2 * AAC_FRAME)
    if (!Number.isInteger(count) || count === 0)
      return Promise.reject(new Error(`not whole frames: ${pcm.length} samples`))
    return this.run(async (child) => {
      // Output frame k + 1 is input frame k.
      const from = this.written + 1
      const until = from + count
      await this.feed(child, new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength), count, until)
      const out = this.frames.slice(from - this.base, until - this.base)
      // Nothing before `until` is needed again.
      this.frames = this.frames.slice(until - this.base)
      this.base = until
      return out
    })
  }

  protected progress(): number {
    return this.base + this.frames.length
  }

  protected reset(): void {
    this.frames = []
    this.base = 0
    this.pending = Buffer.alloc(0)
  }

  protected onOutput(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk])
    this.parse()
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
    if (!this.waiting && this.frames.length > 64) {
      this.base += this.frames.length
      this.frames = []
    }
  }
}

/** `size` encoders; each `encode` goes to one that is free (or the least busy). */
export class AacEncoderPool {
  private readonly pool: LeastBusyPool<AacEncoder>

  constructor(ffmpeg: string, size: number) {
    this.pool = new LeastBusyPool(size, () => new AacEncoder(ffmpeg))
  }

  encode(pcm: Float32Array): Promise<Uint8Array[]> {
    return this.pool.use((encoder) => encoder.encode(pcm))
  }

  close(): void {
    for (const encoder of this.pool.all) encoder.close()
  }
}
