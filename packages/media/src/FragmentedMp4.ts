/**
 * Just enough ISO BMFF (fragmented MP4) to read exports: walk boxes, read a fragment's decode
 * time, and re-stamp fragments (sequence number, track id, decode time) as they are served.
 *
 * The muxer makes each piece of an export by a separate ffmpeg run, starting at time 0 on track 1;
 * where a piece lands in a file is decided later and kept in the export's manifest, so its timing
 * is patched on read (`ExportStore`). The muxer's own box work (splitting ffmpeg's output, merging
 * inits, building AAC fragments) reads boxes with the same functions.
 */

/** A box in a buffer. */
export interface Box {
  /** The four-character type, e.g. `moof`. */
  readonly type: string
  /** Offset of the box (its size field) in the buffer. */
  readonly start: number
  readonly size: number
  readonly headerSize: number
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength)

/** The boxes laid one after another in `b[start, end)`. Throws on a box that overruns. */
export const boxes = (b: Uint8Array, start = 0, end = b.length): Box[] => {
  const dv = view(b)
  const out: Box[] = []
  let offset = start
  while (offset + 8 <= end) {
    let size = dv.getUint32(offset)
    const type = String.fromCharCode(
      b[offset + 4] ?? 0,
      b[offset + 5] ?? 0,
      b[offset + 6] ?? 0,
      b[offset + 7] ?? 0,
    )
    let headerSize = 8
    if (size === 1) {
      size = Number(dv.getBigUint64(offset + 8))
      headerSize = 16
    } else if (size === 0) {
      size = end - offset
    }
    if (size < headerSize || offset + size > end) throw new Error(`malformed box ${type} at ${offset}`)
    out.push({ type, start: offset, size, headerSize })
    offset += size
  }
  return out
}

/** The boxes inside `box`. */
export const childBoxes = (b: Uint8Array, box: Box): Box[] =>
  boxes(b, box.start + box.headerSize, box.start + box.size)

/** The first box of `type` inside `box`. */
export const childBox = (b: Uint8Array, box: Box, type: string): Box | undefined =>
  childBoxes(b, box).find((c) => c.type === type)

/** The base media decode time a `tfdt` box holds (version 0 or 1). */
export const decodeTime = (b: Uint8Array, tfdt: Box): number => {
  const dv = view(b)
  return dv.getUint8(tfdt.start + 8) === 1
    ? Number(dv.getBigUint64(tfdt.start + 12))
    : dv.getUint32(tfdt.start + 12)
}

/** How to re-stamp a piece's fragments for its place in one output file. */
export interface FragmentStamp {
  /** Sequence number of the piece's first moof; the next ones count up. */
  readonly sequence: number
  readonly trackId: number
  /** Decode time of the piece's first fragment; later fragments keep their offsets. */
  readonly baseDecodeTime: number
}

/** A copy of `b` (moof + mdat pairs) with sequence numbers, track ids and decode times set. */
export const stampFragments = (b: Uint8Array, stamp: FragmentStamp): Uint8Array => {
  const out = new Uint8Array(b)
  const dv = view(out)
  let sequence = stamp.sequence
  let first: number | undefined
  for (const moof of boxes(out).filter((x) => x.type === "moof")) {
    const mfhd = childBox(out, moof, "mfhd")
    if (mfhd !== undefined) dv.setUint32(mfhd.start + 12, sequence)
    sequence++
    for (const traf of childBoxes(out, moof).filter((x) => x.type === "traf")) {
      const tfhd = childBox(out, traf, "tfhd")
      if (tfhd !== undefined) dv.setUint32(tfhd.start + 12, stamp.trackId)
      const tfdt = childBox(out, traf, "tfdt")
      if (tfdt === undefined) continue
      const original = decodeTime(out, tfdt)
      first ??= original
      const next = stamp.baseDecodeTime + (original - first)
      if (dv.getUint8(tfdt.start + 8) === 1) dv.setBigUint64(tfdt.start + 12, BigInt(next))
      else if (next <= 0xffffffff) dv.setUint32(tfdt.start + 12, next)
      else throw new Error("decode time does not fit a version 0 tfdt")
    }
  }
  return out
}

/**
 * A copy of init segment `b` declaring a length of `seconds` (`mvhd`'s duration in its timescale,
 * and `mehd`'s fragment duration when there is one), so a player shows the length of what follows.
 */
export const withDuration = (b: Uint8Array, seconds: number): Uint8Array => {
  const out = new Uint8Array(b)
  const dv = view(out)
  const moov = boxes(out).find((x) => x.type === "moov")
  if (moov === undefined) throw new Error("init without moov")
  const mvhd = childBox(out, moov, "mvhd")
  if (mvhd === undefined) throw new Error("init without mvhd")
  const at = mvhd.start + mvhd.headerSize
  const v1 = dv.getUint8(at) === 1
  const duration = Math.round(seconds * dv.getUint32(at + (v1 ? 20 : 12)))
  if (v1) dv.setBigUint64(at + 24, BigInt(duration))
  else dv.setUint32(at + 16, duration)
  const mvex = childBox(out, moov, "mvex")
  const mehd = mvex === undefined ? undefined : childBox(out, mvex, "mehd")
  if (mehd !== undefined) {
    const m = mehd.start + mehd.headerSize
    if (dv.getUint8(m) === 1) dv.setBigUint64(m + 4, BigInt(duration))
    else dv.setUint32(m + 4, duration)
  }
  return out
}
