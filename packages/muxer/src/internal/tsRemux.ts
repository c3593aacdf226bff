/**
 * MPEG-TS (H.264 or ADTS AAC) to fragmented MP4, in process: what `ffmpeg -c copy` does for a
 * raw piece, without a process start (~40 ms of CPU each on Debian's ffmpeg, ~90 per recorded
 * minute of a 3-channel session). A container rewrite only: PES packets become samples, H.264
 * Annex B start codes become 4-byte lengths (every NAL kept, parameter sets included, as ffmpeg
 * does), ADTS headers are dropped. The output has ffmpeg's shape: an init (ftyp + moov, track 1)
 * and one fragment (moof + mdat) timed from decode time 0.
 *
 * Anything else (another codec, no PMT, a stream it cannot read) throws `NotRemuxable`, and the
 * caller falls back to ffmpeg, which decides whether the segment is usable.
 */
import { concat } from "./mp4.js"

export class NotRemuxable extends Error {}

const PACKET = 188
const STREAM_H264 = 0x1b
const STREAM_ADTS_AAC = 0x0f
const VIDEO_STREAM_TYPES = new Set([0x01, 0x02, 0x10, 0x1b, 0x24, 0x42, 0xd1, 0xea])
const AUDIO_STREAM_TYPES = new Set([0x03, 0x04, 0x0f, 0x11, 0x81, 0x87])
/** MPEG-TS timestamps are 90 kHz, and the video track keeps that timescale (as ffmpeg is asked to). */
const TS_CLOCK = 90_000

interface Pes {
  readonly pts: number | undefined
  readonly dts: number | undefined
  readonly data: Uint8Array
}

/** The PES packets of the first video or audio stream (as `-map 0:v:0` / `0:a:0` picks it). */
const demux = (ts: Uint8Array, type: "video" | "audio"): { streamType: number; pes: Pes[] } => {
  if (ts.length < PACKET || ts[0] !== 0x47) throw new NotRemuxable("not MPEG-TS")
  let pmtPid: number | undefined
  let stream: { pid: number; streamType: number } | undefined
  const pes: Pes[] = []
  let parts: Uint8Array[] = []
  const flush = () => {
    if (parts.length > 0) {
      const packet = parsePes(concat(parts))
      if (packet !== undefined) pes.push(packet)
    }
    parts = []
  }
  for (let p = 0; p + PACKET <= ts.length; p += PACKET) {
    if (ts[p] !== 0x47) throw new NotRemuxable(`lost MPEG-TS sync at ${p}`)
    const b1 = ts[p + 1] as number
    const start = (b1 & 0x40) !== 0
    const pid = ((b1 & 0x1f) << 8) | (ts[p + 2] as number)
    const control = ((ts[p + 3] as number) >> 4) & 3
    if ((control & 1) === 0) continue
    let offset = p + 4
    if (control & 2) offset += 1 + (ts[p + 4] as number)
    if (offset >= p + PACKET) continue
    const payload = ts.subarray(offset, p + PACKET)
    if (stream !== undefined && pid === stream.pid) {
      if (start) flush()
      parts.push(payload)
    } else if (start && (pid === 0 || pid === pmtPid) && stream === undefined) {
      const section = payload.subarray(1 + (payload[0] as number))
      if (pid === 0) pmtPid = patPmtPid(section)
      else stream = pmtStream(section, type)
    }
  }
  flush()
  if (stream === undefined) throw new NotRemuxable(`no ${type} stream`)
  return { streamType: stream.streamType, pes }
}

const sectionBody = (s: Uint8Array, tableId: number): Uint8Array => {
  if (s[0] !== tableId || s.length < 3) throw new NotRemuxable("bad PSI section")
  const length = (((s[1] as number) & 0x0f) << 8) | (s[2] as number)
  // Without the 5-byte header after the length and the CRC.
  return s.subarray(8, Math.min(s.length, 3 + length) - 4)
}

const patPmtPid = (section: Uint8Array): number | undefined => {
  const body = sectionBody(section, 0x00)
  for (let i = 0; i + 4 <= body.length; i += 4) {
    const program = ((body[i] as number) << 8) | (body[i + 1] as number)
    if (program !== 0) return (((body[i + 2] as number) & 0x1f) << 8) | (body[i + 3] as number)
  }
  return undefined
}

const pmtStream = (
  section: Uint8Array,
  type: "video" | "audio",
): { pid: number; streamType: number } | undefined => {
  const body = sectionBody(section, 0x02)
  const infoLength = (((body[2] as number) & 0x0f) << 8) | (body[3] as number)
  const wanted = type === "video" ? VIDEO_STREAM_TYPES : AUDIO_STREAM_TYPES
  for (let i = 4 + infoLength; i + 5 <= body.length; ) {
    const streamType = body[i] as number
    const pid = (((body[i + 1] as number) & 0x1f) << 8) | (body[i + 2] as number)
    const esInfo = (((body[i + 3] as number) & 0x0f) << 8) | (body[i + 4] as number)
    if (wanted.has(streamType)) return { pid, streamType }
    i += 5 + esInfo
  }
  return undefined
}

const timestamp = (b: Uint8Array, p: number): number =>
  (((b[p] as number) >> 1) & 7) * 2 ** 30 +
  (b[p + 1] as number) * 2 ** 22 +
  ((b[p + 2] as number) >> 1) * 2 ** 15 +
  (b[p + 3] as number) * 2 ** 7 +
  ((b[p + 4] as number) >> 1)

const parsePes = (b: Uint8Array): Pes | undefined => {
  if (b.length < 9 || b[0] !== 0 || b[1] !== 0 || b[2] !== 1) return undefined
  const flags = (b[7] as number) >> 6
  const headerEnd = 9 + (b[8] as number)
  const declared = ((b[4] as number) << 8) | (b[5] as number)
  const end = declared === 0 ? b.length : Math.min(b.length, 6 + declared)
  if (headerEnd > end) return undefined
  const pts = flags & 2 ? timestamp(b, 9) : undefined
  const dts = flags === 3 ? timestamp(b, 14) : pts
  return { pts, dts, data: b.subarray(headerEnd, end) }
}

/** Undoes 33-bit wrap-around: each time is taken nearest to the previous one. */
const unwrap = (times: ReadonlyArray<number>): number[] => {
  const out: number[] = []
  let prev: number | undefined
  for (const t of times) {
    let u = t
    if (prev !== undefined) {
      while (u - prev > 2 ** 32) u -= 2 ** 33
      while (prev - u > 2 ** 32) u += 2 ** 33
    }
    out.push(u)
    prev = u
  }
  return out
}

// ---------------------------------------------------------------------------------- H.264

/** NAL units of an Annex B access unit (start codes and trailing zero bytes dropped). */
const nalUnits = (b: Uint8Array): Uint8Array[] => {
  const starts: Array<{ at: number; payload: number }> = []
  for (let i = 0; i + 2 < b.length; i++) {
    if (b[i] === 0 && b[i + 1] === 0 && b[i + 2] === 1) {
      starts.push({ at: i, payload: i + 3 })
      i += 2
    }
  }
  const out: Uint8Array[] = []
  for (const [k, s] of starts.entries()) {
    let end = starts[k + 1]?.at ?? b.length
    while (end > s.payload && b[end - 1] === 0) end--
    if (end > s.payload) out.push(b.subarray(s.payload, end))
  }
  return out
}

class BitReader {
  private bit = 0
  constructor(private readonly b: Uint8Array) {}
  u(n: number): number {
    let v = 0
    for (let i = 0; i < n; i++) {
      const byte = this.b[this.bit >> 3]
      if (byte === undefined) throw new NotRemuxable("SPS ends early")
      v = v * 2 + ((byte >> (7 - (this.bit & 7))) & 1)
      this.bit++
    }
    return v
  }
  ue(): number {
    let zeros = 0
    while (this.u(1) === 0) if (++zeros > 31) throw new NotRemuxable("bad Exp-Golomb code")
    return 2 ** zeros - 1 + this.u(zeros)
  }
  se(): number {
    const k = this.ue()
    return k % 2 === 1 ? (k + 1) / 2 : -k / 2
  }
}

/** The RBSP of a NAL unit: emulation-prevention bytes (00 00 03) removed. */
const rbsp = (nal: Uint8Array): Uint8Array => {
  const out: number[] = []
  for (let i = 0; i < nal.length; i++) {
    if (
      i >= 2 &&
      nal[i] === 3 &&
      nal[i - 1] === 0 &&
      nal[i - 2] === 0 &&
      out.at(-1) === 0 &&
      out.at(-2) === 0
    )
      continue
    out.push(nal[i] as number)
  }
  return Uint8Array.from(out)
}

interface Sps {
  readonly width: number
  readonly height: number
  readonly chromaFormat: number
  readonly bitDepthLuma: number
  readonly bitDepthChroma: number
}

const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135])

const parseSps = (nal: Uint8Array): Sps => {
  const r = new BitReader(rbsp(nal.subarray(1)))
  const profile = r.u(8)
  r.u(16) // constraint flags, level
  r.ue() // seq_parameter_set_id
  let chromaFormat = 1
  let bitDepthLuma = 8
  let bitDepthChroma = 8
  if (HIGH_PROFILES.has(profile)) {
    chromaFormat = r.ue()
    if (chromaFormat === 3) r.u(1)
    bitDepthLuma = r.ue() + 8
    bitDepthChroma = r.ue() + 8
    r.u(1)
    if (r.u(1)) {
      for (let i = 0; i < (chromaFormat === 3 ? 12 : 8); i++) {
        if (!r.u(1)) continue
        let last = 8
        let next = 8
        for (let j = 0; j < (i < 6 ? 16 : 64); j++) {
          if (next !== 0) next = (last + r.se() + 256) % 256
          last = next === 0 ? last : next
        }
      }
    }
  }
  r.ue() // log2_max_frame_num_minus4
  const pocType = r.ue()
  if (pocType === 0) r.ue()
  else if (pocType === 1) {
    r.u(1)
    r.se()
    r.se()
    const cycle = r.ue()
    for (let i = 0; i < cycle; i++) r.se()
  }
  r.ue() // max_num_ref_frames
  r.u(1)
  const widthMbs = r.ue() + 1
  const heightMapUnits = r.ue() + 1
  const frameMbsOnly = r.u(1)
  if (!frameMbsOnly) r.u(1)
  r.u(1)
  let crop = [0, 0, 0, 0]
  if (r.u(1)) crop = [r.ue(), r.ue(), r.ue(), r.ue()]
  const cropX = chromaFormat === 1 || chromaFormat === 2 ? 2 : 1
  const cropY = (chromaFormat === 1 ? 2 : 1) * (2 - frameMbsOnly)
  const [left, right, top, bottom] = crop as [number, number, number, number]
  return {
    width: widthMbs * 16 - (left + right) * cropX,
    height: (2 - frameMbsOnly) * heightMapUnits * 16 - (top + bottom) * cropY,
    chromaFormat,
    bitDepthLuma,
    bitDepthChroma,
  }
}

// ---------------------------------------------------------------------------------- boxes

const box = (type: string, ...payload: ReadonlyArray<Uint8Array>): Uint8Array => {
  const body = concat(payload)
  const out = new Uint8Array(8 + body.length)
  new DataView(out.buffer).setUint32(0, out.length)
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i)
  out.set(body, 8)
  return out
}

const u8 = (...v: ReadonlyArray<number>) => Uint8Array.from(v)
const u16 = (...v: ReadonlyArray<number>) => {
  const out = new Uint8Array(v.length * 2)
  const dv = new DataView(out.buffer)
  for (const [i, x] of v.entries()) dv.setUint16(i * 2, x & 0xffff)
  return out
}
const u32 = (...v: ReadonlyArray<number>) => {
  const out = new Uint8Array(v.length * 4)
  const dv = new DataView(out.buffer)
  for (const [i, x] of v.entries()) dv.setUint32(i * 4, x >>> 0)
  return out
}
const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0))
const full = (type: string, version: number, flags: number, ...payload: ReadonlyArray<Uint8Array>) =>
  box(type, u32((version << 24) | flags), ...payload)

const MATRIX = u32(0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
const FTYP = box("ftyp", ascii("iso5"), u32(512), ascii("iso5iso6mp41"))

const init = (
  timescale: number,
  handler: "vide" | "soun",
  sampleEntry: Uint8Array,
  width: number,
  height: number,
): Uint8Array => {
  const mvhd = full(
    "mvhd",
    0,
    0,
    u32(0, 0, 1000, 0, 0x10000),
    u16(0x100, 0),
    u32(0, 0),
    MATRIX,
    u32(0, 0, 0, 0, 0, 0, 2),
  )
  const tkhd = full(
    "tkhd",
    0,
    3,
    u32(0, 0, 1, 0, 0, 0, 0),
    u16(0, 0, handler === "soun" ? 0x100 : 0, 0),
    MATRIX,
    u32(width * 0x10000, height * 0x10000),
  )
  const mdhd = full("mdhd", 0, 0, u32(0, 0, timescale, 0), u16(0x55c4, 0))
  const hdlr = full(
    "hdlr",
    0,
    0,
    u32(0),
    ascii(handler),
    u32(0, 0, 0),
    ascii(handler === "vide" ? "VideoHandler\0" : "SoundHandler\0"),
  )
  const mediaHeader = handler === "vide" ? full("vmhd", 0, 1, u16(0, 0, 0, 0)) : full("smhd", 0, 0, u16(0, 0))
  const dinf = box("dinf", full("dref", 0, 0, u32(1), full("url ", 0, 1)))
  const stbl = box(
    "stbl",
    full("stsd", 0, 0, u32(1), sampleEntry),
    full("stts", 0, 0, u32(0)),
    full("stsc", 0, 0, u32(0)),
    full("stsz", 0, 0, u32(0, 0)),
    full("stco", 0, 0, u32(0)),
  )
  const trak = box("trak", tkhd, box("mdia", mdhd, hdlr, box("minf", mediaHeader, dinf, stbl)))
  const mvex = box("mvex", full("trex", 0, 0, u32(1, 1, 0, 0, 0)))
  return concat([FTYP, box("moov", mvhd, trak, mvex)])
}

interface Sample {
  readonly data: ReadonlyArray<Uint8Array>
  readonly size: number
  readonly duration: number
  readonly sync: boolean
  /** Presentation minus decode time. */
  readonly cto: number
}

const SYNC = 0x02000000
const NON_SYNC = 0x01010000

/** One fragment: moof (track 1, decode time 0, sequence 1) + mdat of `samples`. */
const fragment = (samples: ReadonlyArray<Sample>): Uint8Array => {
  const signed = samples.some((s) => s.cto < 0)
  const count = samples.length
  const trunSize = 8 + 12 + 16 * count
  const trun = new Uint8Array(trunSize)
  const dv = new DataView(trun.buffer)
  dv.setUint32(0, trunSize)
  trun.set(ascii("trun"), 4)
  // data-offset | sample duration, size, flags, composition offset
  dv.setUint32(8, ((signed ? 1 : 0) << 24) | 0x000f01)
  dv.setUint32(12, count)
  let p = 20
  for (const s of samples) {
    dv.setUint32(p, s.duration)
    dv.setUint32(p + 4, s.size)
    dv.setUint32(p + 8, s.sync ? SYNC : NON_SYNC)
    if (signed) dv.setInt32(p + 12, s.cto)
    else dv.setUint32(p + 12, s.cto)
    p += 16
  }
  const moof = box(
    "moof",
    full("mfhd", 0, 0, u32(1)),
    box("traf", full("tfhd", 0, 0x020000, u32(1)), full("tfdt", 1, 0, u32(0, 0)), trun),
  )
  // The data starts after the moof and the mdat's header (trun's data offset, at byte 16 of it).
  new DataView(moof.buffer).setUint32(moof.length - trunSize + 16, moof.length + 8)
  return concat([moof, box("mdat", ...samples.flatMap((s) => s.data))])
}

// ---------------------------------------------------------------------------------- remux

/** A segment remuxed: its init and its one fragment, timed from 0. */
export interface TsRemuxed {
  readonly init: Uint8Array
  readonly fragments: Uint8Array
}

/** Remuxes the first video (H.264) or audio (ADTS AAC) stream of an MPEG-TS segment. */
export const remuxTs = (ts: Uint8Array, type: "video" | "audio"): TsRemuxed =>
  type === "video" ? remuxH264(ts) : remuxAac(ts)

const remuxH264 = (ts: Uint8Array): TsRemuxed => {
  const { streamType, pes } = demux(ts, "video")
  if (streamType !== STREAM_H264) throw new NotRemuxable(`video stream type 0x${streamType.toString(16)}`)
  const units = pes.filter((p) => p.data.length > 0)
  if (units.some((p) => p.dts === undefined || p.pts === undefined))
    throw new NotRemuxable("a video PES has no timestamp")
  const dts = unwrap(units.map((p) => p.dts as number))
  const pts = unwrap(units.map((p) => p.pts as number))
  let sps: Uint8Array | undefined
  let pps: Uint8Array | undefined
  const decoded: Array<Omit<Sample, "duration"> & { dts: number }> = []
  for (const [i, unit] of units.entries()) {
    const nals = nalUnits(unit.data)
    if (nals.length === 0) continue
    let sync = false
    const data: Uint8Array[] = []
    let size = 0
    for (const nal of nals) {
      const nalType = (nal[0] as number) & 0x1f
      if (nalType === 5) sync = true
      else if (nalType === 7) sps ??= nal
      else if (nalType === 8) pps ??= nal
      data.push(u32(nal.length), nal)
      size += 4 + nal.length
    }
    const dtsI = dts[i] as number
    decoded.push({ data, size, sync, cto: (pts[i] as number) - dtsI, dts: dtsI - (dts[0] as number) })
  }
  if (decoded.length === 0 || sps === undefined || pps === undefined)
    throw new NotRemuxable("no H.264 access units with parameter sets")
  // A sample lasts until the next one decodes; the last one as long as the one before it.
  const samples = decoded.map((s, i): Sample => {
    const next = decoded[i + 1]
    const previous = decoded[i - 1]
    const duration =
      next !== undefined ? next.dts - s.dts : previous !== undefined ? s.dts - previous.dts : TS_CLOCK / 30
    if (duration < 0) throw new NotRemuxable("video decode times go backwards")
    return { data: s.data, size: s.size, sync: s.sync, cto: s.cto, duration }
  })
  const info = parseSps(sps)
  const high = HIGH_PROFILES.has(sps[1] as number)
  const avcC = box(
    "avcC",
    u8(1, sps[1] as number, sps[2] as number, sps[3] as number, 0xff, 0xe1),
    u16(sps.length),
    sps,
    u8(1),
    u16(pps.length),
    pps,
    high
      ? u8(0xfc | info.chromaFormat, 0xf8 | (info.bitDepthLuma - 8), 0xf8 | (info.bitDepthChroma - 8), 0)
      : new Uint8Array(0),
  )
  const compressor = new Uint8Array(32)
  const avc1 = box(
    "avc1",
    u8(0, 0, 0, 0, 0, 0),
    u16(1, 0, 0),
    u32(0, 0, 0),
    u16(info.width, info.height),
    u32(0x480000, 0x480000, 0),
    u16(1),
    compressor,
    u16(0x18, 0xffff),
    avcC,
  )
  return {
    init: init(TS_CLOCK, "vide", avc1, info.width, info.height),
    fragments: fragment(samples),
  }
}

const SAMPLE_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350]

/** The AAC of an MPEG-TS segment's first audio stream, as the ADTS stream it carries. */
export interface TsAdts {
  /** ADTS frames back to back, as a decoder reads them (the PES payloads, up to the last whole frame). */
  readonly adts: Uint8Array
  /** The raw frames, headers dropped (each decodes to 1024 samples). */
  readonly frames: ReadonlyArray<Uint8Array>
  /** Audio object type: 2 is AAC-LC. */
  readonly profile: number
  readonly rateIndex: number
  readonly sampleRate: number
  readonly channels: number
}

/** The ADTS AAC of `ts`; throws `NotRemuxable` for another codec or bytes it cannot read. */
export const adtsOfTs = (ts: Uint8Array): TsAdts => {
  const { streamType, pes } = demux(ts, "audio")
  if (streamType !== STREAM_ADTS_AAC) throw new NotRemuxable(`audio stream type 0x${streamType.toString(16)}`)
  const stream = concat(pes.map((p) => p.data))
  const frames: Uint8Array[] = []
  let header: { profile: number; rateIndex: number; channels: number } | undefined
  let end = 0
  for (let p = 0; p + 7 <= stream.length; ) {
    if (stream[p] !== 0xff || ((stream[p + 1] as number) & 0xf6) !== 0xf0)
      throw new NotRemuxable(`no ADTS sync at ${p}`)
    const b2 = stream[p + 2] as number
    const b3 = stream[p + 3] as number
    const protectionAbsent = ((stream[p + 1] as number) & 1) === 1
    const length = ((b3 & 3) << 11) | ((stream[p + 4] as number) << 3) | ((stream[p + 5] as number) >> 5)
    const headerSize = protectionAbsent ? 7 : 9
    if ((stream[p + 6] as number) & 3) throw new NotRemuxable("ADTS frame with several raw blocks")
    if (length < headerSize || p + length > stream.length) break
    header ??= { profile: (b2 >> 6) + 1, rateIndex: (b2 >> 2) & 0xf, channels: ((b2 & 1) << 2) | (b3 >> 6) }
    frames.push(stream.subarray(p + headerSize, p + length))
    p += length
    end = p
  }
  const sampleRate = header === undefined ? undefined : SAMPLE_RATES[header.rateIndex]
  if (header === undefined || sampleRate === undefined || frames.length === 0 || header.channels === 0)
    throw new NotRemuxable("no AAC frames")
  return { adts: stream.subarray(0, end), frames, ...header, sampleRate }
}

const remuxAac = (ts: Uint8Array): TsRemuxed => {
  const { frames, sampleRate: rate, ...header } = adtsOfTs(ts)
  const asc = u16((header.profile << 11) | (header.rateIndex << 7) | (header.channels << 3))
  const decoderSpecific = concat([u8(0x05, asc.length), asc])
  const decoderConfig = concat([
    u8(0x04, 13 + decoderSpecific.length, 0x40, 0x15, 0, 0, 0),
    u32(0, 0),
    decoderSpecific,
  ])
  const esDescriptor = concat([
    u8(0x03, 3 + decoderConfig.length + 3, 0, 1, 0),
    decoderConfig,
    u8(0x06, 1, 0x02),
  ])
  const mp4a = box(
    "mp4a",
    u8(0, 0, 0, 0, 0, 0),
    u16(1),
    u32(0, 0),
    u16(header.channels, 16, 0, 0),
    u32(rate * 0x10000),
    full("esds", 0, 0, esDescriptor),
  )
  const samples = frames.map((f) => ({ data: [f], size: f.length, duration: 1024, sync: true, cto: 0 }))
  return { init: init(rate, "soun", mp4a, 0, 0), fragments: fragment(samples) }
}
