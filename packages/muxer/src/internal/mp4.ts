/**
 * Just enough ISO BMFF (fragmented MP4) to make an export's pieces: split ffmpeg output into init
 * (ftyp+moov) and fragments (moof+mdat), read a fragment's timing, build AAC fragments from raw
 * frames, and merge single-track inits into one. Boxes are read, and fragments re-stamped when an
 * export is served, by `@capture/media`'s `FragmentedMp4`.
 *
 * Pieces are made one segment at a time by separate ffmpeg runs, each starting at time 0 on
 * track 1; where a piece lands in an export is decided later, so its timing is patched on read.
 */
import { type Box, boxes, childBox, childBoxes, decodeTime } from "@capture/media"

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength)

/** ffmpeg's fragmented output cut in two: init (ftyp + moov) and the movie fragments. */
export interface SplitMp4 {
  readonly init: Uint8Array
  /** moof + mdat pairs, back to back (no mfra, sidx, styp). */
  readonly fragments: Uint8Array
  /** How many moof boxes `fragments` holds. */
  readonly moofs: number
}

export const splitFragmented = (b: Uint8Array): SplitMp4 => {
  const top = boxes(b)
  const initParts: Uint8Array[] = []
  const fragmentParts: Uint8Array[] = []
  let moofs = 0
  for (let i = 0; i < top.length; i++) {
    const box = top[i] as Box
    const bytes = b.subarray(box.start, box.start + box.size)
    if (box.type === "ftyp" || box.type === "moov") initParts.push(bytes)
    else if (box.type === "moof") {
      moofs++
      fragmentParts.push(bytes)
    } else if (box.type === "mdat" && top[i - 1]?.type === "moof") fragmentParts.push(bytes)
  }
  if (!initParts.some((p) => p[4] === 0x6d && p[5] === 0x6f)) throw new Error("no moov in fragmented output")
  return { init: concat(initParts), fragments: concat(fragmentParts), moofs }
}

export const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

/** Timing of one piece's fragments, in its track's timescale, relative to its first decode time. */
export interface FragmentTiming {
  readonly samples: number
  /** Sum of sample durations. */
  readonly duration: number
  /** Earliest presentation time (decode time + composition offset), relative to the first decode time. */
  readonly minPts: number
  readonly moofs: number
}

/** Reads sample counts, durations and composition offsets of every fragment in `b`. */
export const fragmentTiming = (b: Uint8Array, trexDefaultDuration = 0): FragmentTiming => {
  const dv = view(b)
  let samples = 0
  let duration = 0
  let minPts = Number.POSITIVE_INFINITY
  let moofs = 0
  let first: number | undefined
  for (const moof of boxes(b).filter((x) => x.type === "moof")) {
    moofs++
    for (const traf of childBoxes(b, moof).filter((x) => x.type === "traf")) {
      const tfhd = childBox(b, traf, "tfhd")
      const tfdt = childBox(b, traf, "tfdt")
      let defaultDuration = trexDefaultDuration
      if (tfhd !== undefined) {
        const flags = dv.getUint32(tfhd.start + 8) & 0xffffff
        let p = tfhd.start + 16
        if (flags & 0x01) p += 8
        if (flags & 0x02) p += 4
        if (flags & 0x08) defaultDuration = dv.getUint32(p)
      }
      const base = tfdt === undefined ? duration : decodeTime(b, tfdt)
      first ??= base
      let dts = base - first
      for (const trun of childBoxes(b, traf).filter((x) => x.type === "trun")) {
        const word = dv.getUint32(trun.start + 8)
        const version = word >>> 24
        const flags = word & 0xffffff
        const count = dv.getUint32(trun.start + 12)
        let p = trun.start + 16
        if (flags & 0x01) p += 4
        if (flags & 0x04) p += 4
        for (let i = 0; i < count; i++) {
          let d = defaultDuration
          let cto = 0
          if (flags & 0x100) {
            d = dv.getUint32(p)
            p += 4
          }
          if (flags & 0x200) p += 4
          if (flags & 0x400) p += 4
          if (flags & 0x800) {
            cto = version === 0 ? dv.getUint32(p) : dv.getInt32(p)
            p += 4
          }
          minPts = Math.min(minPts, dts + cto)
          dts += d
        }
        samples += count
      }
      duration = Math.max(duration, dts)
    }
  }
  return { samples, duration, minPts: Number.isFinite(minPts) ? minPts : 0, moofs }
}

const box = (type: string, ...payload: ReadonlyArray<Uint8Array>): Uint8Array => {
  const body = concat(payload)
  const out = new Uint8Array(8 + body.length)
  const dv = view(out)
  dv.setUint32(0, out.length)
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i)
  out.set(body, 8)
  return out
}

const u32s = (...values: ReadonlyArray<number>): Uint8Array => {
  const out = new Uint8Array(values.length * 4)
  const dv = view(out)
  for (const [i, v] of values.entries()) dv.setUint32(i * 4, v >>> 0)
  return out
}

/** Splits an ADTS stream into raw AAC frames (headers dropped). */
export const adtsFrames = (b: Uint8Array): Uint8Array[] => {
  const frames: Uint8Array[] = []
  let p = 0
  while (p + 7 <= b.length) {
    if (b[p] !== 0xff || ((b[p + 1] ?? 0) & 0xf0) !== 0xf0) throw new Error(`no ADTS sync at ${p}`)
    const protectionAbsent = ((b[p + 1] ?? 0) & 1) === 1
    const length = (((b[p + 3] ?? 0) & 3) << 11) | ((b[p + 4] ?? 0) << 3) | ((b[p + 5] ?? 0) >> 5)
    const header = protectionAbsent ? 7 : 9
    if (length < header || p + length > b.length) throw new Error(`truncated ADTS frame at ${p}`)
    frames.push(b.subarray(p + header, p + length))
    p += length
  }
  return frames
}

/**
 * One movie fragment (moof + mdat) of AAC frames, 1024 samples each, on track 1 at decode
 * time 0 (re-stamped when served).
 */
export const aacFragment = (frames: ReadonlyArray<Uint8Array>): Uint8Array => {
  const mfhd = box("mfhd", u32s(0, 1))
  // default-base-is-moof | default-sample-duration | default-sample-flags; every AAC frame is a sync sample.
  const tfhd = box("tfhd", u32s(0x020028, 1, 1024, 0x02000000))
  const tfdtPayload = new Uint8Array(12)
  tfdtPayload[0] = 1
  const tfdt = box("tfdt", tfdtPayload)
  const trunSize = 8 + 12 + 4 * frames.length
  const trafSize = 8 + tfhd.length + tfdt.length + trunSize
  const moofSize = 8 + mfhd.length + trafSize
  // data-offset | sample-size; the data starts after the moof and the mdat header.
  const trun = box("trun", u32s(0x000201, frames.length, moofSize + 8), u32s(...frames.map((f) => f.length)))
  const moof = box("moof", mfhd, box("traf", tfhd, tfdt, trun))
  return concat([moof, box("mdat", ...frames)])
}

// Boxes of an init segment we descend into when rewriting it.
const CONTAINERS = new Set(["moov", "trak", "mdia", "minf", "stbl", "mvex", "edts", "dinf"])

interface Node {
  readonly type: string
  /** Leaf payload (after the header), or undefined for a container. */
  readonly payload: Uint8Array | undefined
  readonly children: Node[]
}

const parseTree = (b: Uint8Array, start: number, end: number): Node[] =>
  boxes(b, start, end).map((x) =>
    CONTAINERS.has(x.type)
      ? { type: x.type, payload: undefined, children: parseTree(b, x.start + x.headerSize, x.start + x.size) }
      : { type: x.type, payload: b.slice(x.start + x.headerSize, x.start + x.size), children: [] },
  )

const serialize = (node: Node): Uint8Array =>
  node.payload === undefined ? box(node.type, ...node.children.map(serialize)) : box(node.type, node.payload)

const find = (nodes: ReadonlyArray<Node>, type: string): Node | undefined =>
  nodes.find((n) => n.type === type)

/** The timescale of the (single or first) track of an init segment. */
export const trackTimescale = (init: Uint8Array): number => {
  const moov = parseInit(init).moov
  const mdhd = find(
    find(find(moov.children, "trak")?.children ?? [], "mdia")?.children ?? [],
    "mdhd",
  )?.payload
  if (mdhd === undefined) throw new Error("init without mdhd")
  return view(mdhd).getUint32(mdhd[0] === 1 ? 20 : 12)
}

const parseInit = (init: Uint8Array): { ftyp: Uint8Array; moov: Node } => {
  const top = boxes(init)
  const ftyp = top.find((x) => x.type === "ftyp")
  const moovBox = top.find((x) => x.type === "moov")
  if (ftyp === undefined || moovBox === undefined) throw new Error("not an init segment (ftyp + moov)")
  const moov = parseTree(init, moovBox.start, moovBox.start + moovBox.size)[0] as Node
  return { ftyp: init.slice(ftyp.start, ftyp.start + ftyp.size), moov }
}

const setTrackId = (node: Node, trackId: number): Node => {
  if (node.type === "tkhd" && node.payload !== undefined) {
    const payload = new Uint8Array(node.payload)
    view(payload).setUint32(payload[0] === 1 ? 20 : 12, trackId)
    return { ...node, payload }
  }
  if (node.type === "trex" && node.payload !== undefined) {
    const payload = new Uint8Array(node.payload)
    view(payload).setUint32(4, trackId)
    return { ...node, payload }
  }
  return { ...node, children: node.children.map((c) => setTrackId(c, trackId)) }
}

// Edit lists would shift presentation differently per player; pieces are placed by decode time.
const withoutEdits = (node: Node): Node => ({
  ...node,
  children: node.children.filter((c) => c.type !== "edts").map(withoutEdits),
})

/**
 * One init segment with the first track of each given init, numbered 1, 2, … in order, no edit
 * lists, and the total duration (in ms) in `mehd` and `mvhd` so players know the length up front.
 */
export const mergeInits = (inits: ReadonlyArray<Uint8Array>, durationMs: number): Uint8Array => {
  const parsed = inits.map(parseInit)
  const first = parsed[0]
  if (first === undefined) throw new Error("no init to merge")
  const traks: Node[] = []
  const trexes: Node[] = []
  parsed.forEach(({ moov }, i) => {
    const trak = find(moov.children, "trak")
    const trex = find(find(moov.children, "mvex")?.children ?? [], "trex")
    if (trak === undefined || trex === undefined) throw new Error("init without trak / trex")
    traks.push(withoutEdits(setTrackId(trak, i + 1)))
    trexes.push(setTrackId(trex, i + 1))
  })
  const mvhdNode = find(first.moov.children, "mvhd")
  if (mvhdNode?.payload === undefined) throw new Error("init without mvhd")
  const mvhd = new Uint8Array(mvhdNode.payload)
  const dv = view(mvhd)
  const v1 = mvhd[0] === 1
  const timescale = dv.getUint32(v1 ? 20 : 12)
  const duration = Math.round((durationMs * timescale) / 1000)
  if (v1) dv.setBigUint64(24, BigInt(duration))
  else dv.setUint32(16, duration)
  dv.setUint32(mvhd.length - 4, inits.length + 1)
  const mehd = new Uint8Array(12)
  mehd[0] = 1
  view(mehd).setBigUint64(4, BigInt(duration))
  const moov: Node = {
    type: "moov",
    payload: undefined,
    children: [
      { type: "mvhd", payload: mvhd, children: [] },
      ...traks,
      {
        type: "mvex",
        payload: undefined,
        children: [{ type: "mehd", payload: mehd, children: [] }, ...trexes],
      },
    ],
  }
  return concat([first.ftyp, serialize(moov)])
}
