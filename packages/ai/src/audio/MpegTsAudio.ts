/**
 * The AAC audio of an MPEG-TS segment as an ADTS stream, read in-process: the recorder's segments
 * carry AAC in ADTS (stream type 0x0F), so the bytes a decoder needs are the PES payloads of that
 * stream, concatenated. Parsing them here lets the pipeline hand audio to a decoder that starts in
 * a few milliseconds (faad) instead of ffmpeg, whose start alone costs ~40 ms of CPU per segment.
 */

const PACKET = 188
const SYNC = 0x47
/** ISO/IEC 13818-7 ADTS AAC. */
const STREAM_TYPE_ADTS = 0x0f

/** Why a segment's audio could not be read as ADTS (the caller falls back to ffmpeg). */
export class NotAdtsAudio extends Error {
  readonly _tag = "NotAdtsAudio"
}

/** The payload of one packet: after the 4-byte header and any adaptation field. */
const payloadOf = (ts: Uint8Array, at: number): Uint8Array | undefined => {
  const control = (ts[at + 3] as number) >> 4
  if ((control & 0x1) === 0) return undefined
  let start = at + 4
  if ((control & 0x2) !== 0) start += 1 + (ts[start] as number)
  const end = at + PACKET
  return start < end ? ts.subarray(start, end) : undefined
}

/** A PSI section's body, after the pointer field; undefined when it does not fit the packet. */
const sectionOf = (payload: Uint8Array): Uint8Array | undefined => {
  const pointer = payload[0] as number
  const section = payload.subarray(1 + pointer)
  if (section.length < 3) return undefined
  const length = (((section[1] as number) & 0x0f) << 8) | (section[2] as number)
  return section.length >= 3 + length ? section.subarray(0, 3 + length) : undefined
}

/** The PMT's PID from a PAT section (the first program that is not the network PID). */
const pmtPidOf = (pat: Uint8Array): number | undefined => {
  const end = pat.length - 4
  for (let at = 8; at + 4 <= end; at += 4) {
    const program = ((pat[at] as number) << 8) | (pat[at + 1] as number)
    if (program !== 0) return (((pat[at + 2] as number) & 0x1f) << 8) | (pat[at + 3] as number)
  }
  return undefined
}

/** The first ADTS audio stream's PID from a PMT section. */
const adtsPidOf = (pmt: Uint8Array): number | undefined => {
  const infoLength = (((pmt[10] as number) & 0x0f) << 8) | (pmt[11] as number)
  const end = pmt.length - 4
  for (let at = 12 + infoLength; at + 5 <= end; ) {
    const type = pmt[at] as number
    const pid = (((pmt[at + 1] as number) & 0x1f) << 8) | (pmt[at + 2] as number)
    if (type === STREAM_TYPE_ADTS) return pid
    at += 5 + ((((pmt[at + 3] as number) & 0x0f) << 8) | (pmt[at + 4] as number))
  }
  return undefined
}

/**
 * The ADTS bytes of the segment's first AAC stream. Throws `NotAdtsAudio` when the bytes are not
 * MPEG-TS or carry no ADTS stream (another codec: ffmpeg decodes those).
 */
export const adtsOfMpegTs = (ts: Uint8Array): Uint8Array => {
  if (ts.length < PACKET || ts[0] !== SYNC) throw new NotAdtsAudio("not MPEG-TS")
  let pmtPid: number | undefined
  let audioPid: number | undefined
  const parts: Array<Uint8Array> = []
  let bytes = 0
  for (let at = 0; at + PACKET <= ts.length; at += PACKET) {
    if (ts[at] !== SYNC) throw new NotAdtsAudio(`lost sync at byte ${at}`)
    const unitStart = ((ts[at + 1] as number) & 0x40) !== 0
    const pid = (((ts[at + 1] as number) & 0x1f) << 8) | (ts[at + 2] as number)
    const payload = payloadOf(ts, at)
    if (payload === undefined) continue
    if (pid === 0 && pmtPid === undefined && unitStart) {
      const pat = sectionOf(payload)
      if (pat !== undefined) pmtPid = pmtPidOf(pat)
    } else if (pid === pmtPid && audioPid === undefined && unitStart) {
      const pmt = sectionOf(payload)
      if (pmt !== undefined) audioPid = adtsPidOf(pmt) ?? -1
    } else if (pid === audioPid) {
      let data = payload
      if (unitStart) {
        // A PES header: start code, stream id, length, flags, then its own header's length.
        if (data.length < 9 || data[0] !== 0 || data[1] !== 0 || data[2] !== 1) continue
        data = data.subarray(9 + (data[8] as number))
      }
      parts.push(data)
      bytes += data.length
    }
  }
  if (audioPid === undefined || audioPid === -1) throw new NotAdtsAudio("no ADTS audio stream")
  const adts = new Uint8Array(bytes)
  let offset = 0
  for (const part of parts) {
    adts.set(part, offset)
    offset += part.length
  }
  return adts
}

/** Sample rate and channel count from the first ADTS header. */
export const adtsFormatOf = (
  adts: Uint8Array,
): { readonly sampleRate: number; readonly channels: number } => {
  if (adts.length < 7 || adts[0] !== 0xff || ((adts[1] as number) & 0xf0) !== 0xf0) {
    throw new NotAdtsAudio("no ADTS header")
  }
  const rates = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350]
  const sampleRate = rates[((adts[2] as number) >> 2) & 0x0f]
  const channels = (((adts[2] as number) & 0x01) << 2) | ((adts[3] as number) >> 6)
  if (sampleRate === undefined || channels === 0) throw new NotAdtsAudio("unsupported ADTS header")
  return { sampleRate, channels }
}
