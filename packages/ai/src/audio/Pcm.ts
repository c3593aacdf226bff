/**
 * Audio as the pipeline handles it: 16 kHz mono signed 16-bit samples, what speech engines take.
 * A recorded segment (MPEG-TS with AAC) is decoded through pipes, nothing on disk: by faad where
 * installed (the AAC demuxed here), else by ffmpeg.
 */
import { spawn } from "node:child_process"
import { adtsOfMpegTs, NotAdtsAudio } from "./MpegTsAudio.js"
import { toMono16k } from "./Resample.js"

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

/** The decoders a worker has: ffmpeg always, faad (Debian `faad`) where installed. */
export interface AudioDecoders {
  readonly ffmpeg: string
  /** Decodes AAC in a few ms of CPU where ffmpeg spends ~40 ms just starting. */
  readonly faad?: string | undefined
}

/** Runs `command` with `input` on stdin; its stdout, or an `AudioDecodeError`. */
const runDecoder = (command: string, args: ReadonlyArray<string>, input: Uint8Array): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] })
    const chunks: Array<Buffer> = []
    let errors = ""
    child.stdout.on("data", (chunk: Buffer) => chunks.push(chunk))
    child.stderr.on("data", (chunk: Buffer) => {
      if (errors.length < 2_000) errors += chunk.toString()
    })
    child.on("error", (error) => reject(new AudioDecodeError(`${command}: ${error.message}`)))
    // A decoder may stop reading early (an unreadable input): that is its exit code's to report.
    child.stdin.on("error", () => undefined)
    child.on("close", (code) => {
      if (code !== 0)
        reject(new AudioDecodeError(`${command} exited ${code}: ${errors.trim().slice(0, 500)}`))
      else resolve(Buffer.concat(chunks))
    })
    child.stdin.end(input)
  })

/** Little-endian s16 bytes as samples, by one copy into an aligned buffer. */
const samplesOf = (bytes: Uint8Array): Int16Array => {
  const samples = new Int16Array(bytes.length >> 1)
  new Uint8Array(samples.buffer).set(bytes.subarray(0, samples.length * 2))
  return samples
}

/** ffmpeg: any container and codec, 16 kHz mono out. */
const decodeWithFfmpeg = async (ffmpeg: string, media: Uint8Array): Promise<Int16Array> =>
  samplesOf(
    await runDecoder(
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
      media,
    ),
  )

/**
 * faad on the segment's ADTS stream (demuxed here), as a WAV whose header says the rate and
 * channels it decoded to (it makes mono stereo, and SBR doubles the rate), then resampled here.
 * faad leaves out the decoder's first frame of delay, which ffmpeg outputs: one frame of silence
 * in front puts every sample where ffmpeg puts it, so times agree whichever decoder ran.
 */
const decodeWithFaad = async (faad: string, media: Uint8Array): Promise<Int16Array> => {
  const adts = adtsOfMpegTs(media)
  const wav = await runDecoder(faad, ["-q", "-w", "-b", "1", "-f", "1", "-"], adts)
  const format = wavFormatOf(wav)
  const pcm = toMono16k(
    samplesOf(wav.subarray(format.dataOffset)),
    format.channels,
    format.sampleRate,
    SAMPLE_RATE,
  )
  const delay = Math.round((AAC_FRAME_SAMPLES * SAMPLE_RATE) / format.sampleRate)
  return concatPcm([new Int16Array(delay), pcm])
}

/** AAC's samples per frame (per channel). */
const AAC_FRAME_SAMPLES = 1024

/** The format of a streamed 16-bit WAV (whose sizes may be unknown) and where its samples start. */
const wavFormatOf = (wav: Buffer): { sampleRate: number; channels: number; dataOffset: number } => {
  if (wav.length < 12 || wav.toString("ascii", 0, 4) !== "RIFF" || wav.toString("ascii", 8, 12) !== "WAVE") {
    throw new AudioDecodeError("the decoder wrote no WAV")
  }
  let at = 12
  let format: { sampleRate: number; channels: number } | undefined
  while (at + 8 <= wav.length) {
    const id = wav.toString("ascii", at, at + 4)
    const size = wav.readUInt32LE(at + 4)
    if (id === "fmt " && at + 24 <= wav.length) {
      format = { channels: wav.readUInt16LE(at + 10), sampleRate: wav.readUInt32LE(at + 12) }
      if (wav.readUInt16LE(at + 22) !== 16) throw new AudioDecodeError("the decoder wrote no 16-bit WAV")
    }
    if (id === "data") {
      if (format === undefined || format.channels === 0)
        throw new AudioDecodeError("WAV data before its format")
      return { ...format, dataOffset: at + 8 }
    }
    at += 8 + size + (size & 1)
  }
  throw new AudioDecodeError("the decoder's WAV has no data")
}

/**
 * Decodes a media segment's first audio stream to 16 kHz mono s16 samples: with faad when the
 * worker has it and the segment carries ADTS AAC (the recorder's), with ffmpeg otherwise.
 */
export const decodeToPcm = async (decoders: AudioDecoders, media: Uint8Array): Promise<Int16Array> => {
  if (decoders.faad !== undefined) {
    try {
      return await decodeWithFaad(decoders.faad, media)
    } catch (error) {
      // Another codec or a stream faad refuses: ffmpeg reads whatever can be read.
      if (!(error instanceof NotAdtsAudio) && !(error instanceof AudioDecodeError)) throw error
    }
  }
  return decodeWithFfmpeg(decoders.ffmpeg, media)
}

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
