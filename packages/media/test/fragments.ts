/** Small fragmented-MP4 pieces built box by box, and a reader of what a served file holds. */
import { boxes, childBox, childBoxes, decodeTime } from "../src/index.js"

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

/** A box of `type` around `payload`. */
export const box = (type: string, ...payload: ReadonlyArray<Uint8Array>): Uint8Array => {
  const body = concat(payload)
  const out = new Uint8Array(8 + body.length)
  new DataView(out.buffer).setUint32(0, out.length)
  out.set(encoder.encode(type), 4)
  out.set(body, 8)
  return out
}

const u32 = (...values: ReadonlyArray<number>): Uint8Array => {
  const out = new Uint8Array(values.length * 4)
  for (const [i, v] of values.entries()) new DataView(out.buffer).setUint32(i * 4, v)
  return out
}

const tfdt = (time: number, version: 0 | 1): Uint8Array => {
  if (version === 0) return box("tfdt", u32(0, time))
  const payload = new Uint8Array(12)
  payload[0] = 1
  new DataView(payload.buffer).setBigUint64(4, BigInt(time))
  return box("tfdt", payload)
}

/**
 * One movie fragment (moof + mdat) as ffmpeg writes a piece's: sequence 1, track 1, decode time
 * `time`, with `text` as its media data.
 */
export const fragment = (time: number, text: string, version: 0 | 1 = 1): Uint8Array =>
  concat([
    box("moof", box("mfhd", u32(0, 1)), box("traf", box("tfhd", u32(0, 1)), tfdt(time, version))),
    box("mdat", encoder.encode(text)),
  ])

/** A version 0 `mvhd` payload: timescale 1000, duration 0, the rest zeros. */
const mvhd = (): Uint8Array => concat([u32(0, 0, 0, 1000, 0), new Uint8Array(80)])

/** A version 1 `mehd` payload: fragment duration 0. */
const mehd = (): Uint8Array => concat([u32(0x01000000), new Uint8Array(8)])

/**
 * An init segment stand-in: ftyp + moov holding an `mvhd` and `mvex`/`mehd` (timescale 1000,
 * duration 0) and a marker, enough to find it in a file.
 */
export const init = (marker: string): Uint8Array =>
  concat([
    box("ftyp", encoder.encode("isom")),
    box("moov", box("mvhd", mvhd()), box("mvex", box("mehd", mehd())), box("udta", encoder.encode(marker))),
  ])

/** The durations an init declares: `mvhd`'s and `mehd`'s, in its timescale (as `init` writes them). */
export const declaredDurations = (file: Uint8Array) => {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength)
  const moov = boxes(file).find((b) => b.type === "moov")
  const mvhdBox = moov === undefined ? undefined : childBox(file, moov, "mvhd")
  const mvex = moov === undefined ? undefined : childBox(file, moov, "mvex")
  const mehdBox = mvex === undefined ? undefined : childBox(file, mvex, "mehd")
  return {
    mvhd: mvhdBox === undefined ? undefined : view.getUint32(mvhdBox.start + 8 + 16),
    mehd: mehdBox === undefined ? undefined : Number(view.getBigUint64(mehdBox.start + 8 + 4)),
  }
}

/** What each fragment in `file` says: its sequence, track, decode time and media data. */
export const fragmentsOf = (file: Uint8Array) => {
  const top = boxes(file)
  return top.flatMap((moof, i) => {
    if (moof.type !== "moof") return []
    const mfhd = childBox(file, moof, "mfhd")
    const traf = childBoxes(file, moof).find((b) => b.type === "traf")
    const tfhd = traf === undefined ? undefined : childBox(file, traf, "tfhd")
    const time = traf === undefined ? undefined : childBox(file, traf, "tfdt")
    const mdat = top[i + 1]
    const view = new DataView(file.buffer, file.byteOffset, file.byteLength)
    return [
      {
        sequence: mfhd === undefined ? undefined : view.getUint32(mfhd.start + 12),
        track: tfhd === undefined ? undefined : view.getUint32(tfhd.start + 12),
        time: time === undefined ? undefined : decodeTime(file, time),
        data:
          mdat === undefined
            ? ""
            : decoder.decode(file.subarray(mdat.start + mdat.headerSize, mdat.start + mdat.size)),
      },
    ]
  })
}
