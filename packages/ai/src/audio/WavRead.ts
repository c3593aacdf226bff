/** Reading pipeline audio back from a 16-bit PCM WAV (what providers and tests receive). */

/** The samples of a 16-bit PCM WAV's `data` chunk (first channel layout as stored). */
export const pcmOfWav = (wav: Uint8Array): Int16Array => {
  const b = Buffer.from(wav.buffer, wav.byteOffset, wav.byteLength)
  let at = 12
  while (at + 8 <= b.length) {
    const id = b.toString("ascii", at, at + 4)
    const size = b.readUInt32LE(at + 4)
    if (id === "data") {
      const end = Math.min(b.length, at + 8 + size)
      const samples = new Int16Array((end - at - 8) >> 1)
      for (let i = 0; i < samples.length; i++) samples[i] = b.readInt16LE(at + 8 + i * 2)
      return samples
    }
    at += 8 + size + (size & 1)
  }
  return new Int16Array(0)
}
