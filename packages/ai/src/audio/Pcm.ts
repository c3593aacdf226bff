/**
 * Audio as the pipeline handles it: 16 kHz mono signed 16-bit samples, what speech engines take.
 * A recorded segment (MPEG-TS with AAC) is decoded by ffmpeg through pipes, nothing on disk.
 */
import { spawn } from "node:child_process"

/** Samples per second of pipeline audio. */
export const SAMPLE_RATE = 16_000
/** Samples per millisecond. */
export const SAMPLES_PER_MS = SAMPLE_RATE / 1000

/** Milliseconds of `samples` samples. */
export const samplesToMs = (samples: number): number => samples / SAMPLES_PER_MS
/** Samples in `ms` milliseconds (rounded). */
export const msToSamples = (ms: number): number => Math.round(ms * SAMPLES_PER_MS)

/** ffmpeg could not decode a segment. */
export class AudioDecodeError extends Error {
  readonly _tag = "AudioDecodeError"
}

/** Decodes a media segment's first audio stream to 16 kHz mono s16 samples. */
export const decodeToPcm = (ffmpeg: string, media: Uint8Array): Promise<Int16Array> =>
  new Promise((resolve, reject) => {
    const child = spawn(
      ffmpeg,
      // The container is named: probing a tiny last segment can take it for raw ADTS.
      [
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "mpegts",
        "-i",
        "pipe:0",
        "-map",
        "0:a:0",
        "-vn",
      ].concat(["-ac", "1", "-ar", String(SAMPLE_RATE), "-f", "s16le", "pipe:1"]),
      { stdio: ["pipe", "pipe", "pipe"] },
    )
    const chunks: Array<Buffer> = []
    let errors = ""
    child.stdout.on("data", (chunk: Buffer) => chunks.push(chunk))
    child.stderr.on("data", (chunk: Buffer) => {
      if (errors.length < 2_000) errors += chunk.toString()
    })
    child.on("error", (error) => reject(new AudioDecodeError(`ffmpeg: ${error.message}`)))
    // ffmpeg may stop reading early (an unreadable input): that is its exit code's to report.
    child.stdin.on("error", () => undefined)
    child.on("close", (code) => {
      if (code !== 0) {
        reject(new AudioDecodeError(`ffmpeg exited ${code}: ${errors.trim().slice(0, 500)}`))
        return
      }
      // One copy into an aligned buffer (little-endian, as Node's platforms are), not a read per sample.
      const bytes = Buffer.concat(chunks)
      const samples = new Int16Array(bytes.length >> 1)
      new Uint8Array(samples.buffer).set(bytes.subarray(0, samples.length * 2))
      resolve(samples)
    })
    child.stdin.end(media)
  })

/** The samples of several buffers, one after the other. */
export const concatPcm = (parts: ReadonlyArray<Int16Array>): Int16Array => {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}
