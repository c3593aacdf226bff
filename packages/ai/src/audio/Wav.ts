/** WAV files of pipeline audio (16 kHz mono s16), as speech APIs take them. */
import { SAMPLE_RATE } from "./Pcm.js"

/** A RIFF/WAVE file holding `samples`. */
export const toWav = (samples: Int16Array, sampleRate = SAMPLE_RATE): Uint8Array => {
  const dataBytes = samples.length * 2
  const out = Buffer.alloc(44 + dataBytes)
  out.write("RIFF", 0, "ascii")
  out.writeUInt32LE(36 + dataBytes, 4)
  out.write("WAVE", 8, "ascii")
  out.write("fmt ", 12, "ascii")
  out.writeUInt32LE(16, 16)
  out.writeUInt16LE(1, 20) // PCM
  out.writeUInt16LE(1, 22) // mono
  out.writeUInt32LE(sampleRate, 24)
  out.writeUInt32LE(sampleRate * 2, 28)
  out.writeUInt16LE(2, 32)
  out.writeUInt16LE(16, 34)
  out.write("data", 36, "ascii")
  out.writeUInt32LE(dataBytes, 40)
  out.set(new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength), 44)
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

/** Raw little-endian bytes of `samples`. */
export const toRawBytes = (samples: Int16Array): Uint8Array => {
  return new Uint8Array(samples.buffer.slice(samples.byteOffset, samples.byteOffset + samples.byteLength))
}
