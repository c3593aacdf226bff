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
import { FfmpegFailed } from "../Ffmpeg.js"
import { LeastBusyPool, LongLivedFfmpeg } from "./longLivedFfmpeg.js"
import { AAC_FRAME, MIX_RATE } from "./media.js"

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

/** One ffmpeg process decoding `channels`-channel AAC-LC at 48 kHz; `decode` calls run one at a time. */
export class AacDecoder extends LongLivedFfmpeg {
  /** Output bytes received from the current process; `chunks` hold those from `base` on. */
  private received = 0
  private chunks: Buffer[] = []
  private base = 0
  private readonly frameBytes: number

  constructor(
    ffmpeg: string,
    readonly channels: 1 | 2,
  ) {
    super(ffmpeg, argsFor(channels), "AAC decoder", silentAdtsFrame(channels))
    this.frameBytes = AAC_FRAME * channels * 4
  }

  /**
   * Decodes `frames` ADTS frames (`adts`, AAC-LC 48 kHz with this decoder's channel count) and
   * returns their samples, interleaved float, one frame of 1024 per input frame, in order.
   */
  decode(adts: Uint8Array, frames: number): Promise<Float32Array> {
    if (frames <= 0) return this.run(async () => new Float32Array(0))
    return this.run(async (child) => {
      const from = this.written * this.frameBytes
      const until = from + frames * this.frameBytes
      await this.feed(child, adts, frames, until)
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
    })
  }

  protected progress(): number {
    return this.received
  }

  protected reset(): void {
    this.received = 0
    this.chunks = []
    this.base = 0
  }

  protected onOutput(chunk: Buffer): void {
    this.received += chunk.length
    if (this.waiting) this.chunks.push(chunk)
    else {
      // Silence after a run: never asked for.
      this.chunks = []
      this.base = this.received
    }
  }

  /** Bytes [from, until) of the output; everything before `until` is dropped. */
  private take(from: number, until: number): Buffer {
    const all = Buffer.concat(this.chunks)
    const out = all.subarray(from - this.base, until - this.base)
    this.chunks = [all.subarray(until - this.base)]
    this.base = until
    return out
  }
}

/** `size` decoders per channel count; each `decode` goes to a free one (or the least busy). */
export class AacDecoderPool {
  private readonly pools = new Map<1 | 2, LeastBusyPool<AacDecoder>>()

  constructor(
    private readonly ffmpeg: string,
    private readonly size: number,
  ) {}

  decode(adts: Uint8Array, frames: number, channels: 1 | 2): Promise<Float32Array> {
    let pool = this.pools.get(channels)
    if (pool === undefined) {
      pool = new LeastBusyPool(this.size, () => new AacDecoder(this.ffmpeg, channels))
      this.pools.set(channels, pool)
    }
    return pool.use((decoder) => decoder.decode(adts, frames))
  }

  /** Every decoder started so far (tests). */
  get all(): ReadonlyArray<AacDecoder> {
    return [...this.pools.values()].flatMap((pool) => pool.all)
  }

  close(): void {
    for (const decoder of this.all) decoder.close()
  }
}
