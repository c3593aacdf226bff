/**
 * A segment body checked while it streams: at most `maxBytes`, and MPEG-TS all the way (188-byte
 * packets, each opening with the 0x47 sync byte, the first ones carrying a Program Association
 * Table on PID 0 with a valid CRC, as every segment ffmpeg's muxers write does). A body that fails
 * is refused at the first byte that gives it away, so nothing past it is read or stored.
 */
import { type CaptureError, captureError } from "@capture/protocol"

export const TS_PACKET_BYTES = 188
const SYNC_BYTE = 0x47
/** The PAT must be among the first packets (ffmpeg writes SDT, PAT, PMT first). */
export const PAT_WITHIN_PACKETS = 16

/** Why a body was refused while it streamed. */
export class SegmentBodyRefused extends Error {
  constructor(readonly error: CaptureError) {
    super(error.message)
  }
}

const notMpegTs = (why: string) =>
  new SegmentBodyRefused(
    captureError("unsupported_media", `the body is not an MPEG-TS segment: ${why}`, { field: "body" }),
  )

const CRC_TABLE = (() => {
  const table = new Uint32Array(256)
  for (let i = 0; i < 256; i++) {
    let crc = i << 24
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x80000000 ? (crc << 1) ^ 0x04c11db7 : crc << 1
    table[i] = crc >>> 0
  }
  return table
})()

/** CRC-32/MPEG-2 of `bytes`; over a PSI section including its CRC field, 0 when intact. */
const crc32Mpeg2 = (bytes: Uint8Array): number => {
  let crc = 0xffffffff
  for (const byte of bytes) crc = ((crc << 8) ^ (CRC_TABLE[((crc >>> 24) ^ byte) & 0xff] ?? 0)) >>> 0
  return crc
}

/** Whether a 188-byte packet carries the start of a Program Association Table with a valid CRC. */
export const isPatPacket = (packet: Uint8Array): boolean => {
  const pid = ((packet[1] ?? 0) & 0x1f) * 256 + (packet[2] ?? 0)
  const payloadUnitStart = ((packet[1] ?? 0) & 0x40) !== 0
  const adaptation = ((packet[3] ?? 0) >> 4) & 0x3
  if (pid !== 0 || !payloadUnitStart || (adaptation & 0x1) === 0) return false
  const payload = 4 + (adaptation & 0x2 ? 1 + (packet[4] ?? 0) : 0)
  const table = payload + 1 + (packet[payload] ?? 0)
  if (table + 3 > TS_PACKET_BYTES || packet[table] !== 0x00) return false
  const sectionSyntax = ((packet[table + 1] ?? 0) & 0x80) !== 0
  const sectionLength = ((packet[table + 1] ?? 0) & 0x0f) * 256 + (packet[table + 2] ?? 0)
  const end = table + 3 + sectionLength
  // Header fields (5 bytes) and the CRC (4): the shortest PAT has no programs.
  if (!sectionSyntax || sectionLength < 9 || end > TS_PACKET_BYTES) return false
  return crc32Mpeg2(packet.subarray(table, end)) === 0
}

/**
 * The bytes of `body`, passed on chunk by chunk as they are checked; throws `SegmentBodyRefused`
 * (`payload_too_large` or `unsupported_media`, field `body`) at the first chunk that fails.
 */
export async function* checkedSegmentBody(
  body: AsyncIterable<Uint8Array>,
  maxBytes: number,
): AsyncGenerator<Uint8Array> {
  let offset = 0
  // The first packets, kept until the PAT is found among them.
  const head = new Uint8Array(TS_PACKET_BYTES * PAT_WITHIN_PACKETS)
  let patFound = false
  for await (const chunk of body) {
    if (offset + chunk.length > maxBytes) {
      throw new SegmentBodyRefused(
        captureError("payload_too_large", `a segment may be at most ${maxBytes} bytes`, { field: "body" }),
      )
    }
    for (
      let i = (TS_PACKET_BYTES - (offset % TS_PACKET_BYTES)) % TS_PACKET_BYTES;
      i < chunk.length;
      i += TS_PACKET_BYTES
    ) {
      if (chunk[i] !== SYNC_BYTE) throw notMpegTs(`no sync byte at offset ${offset + i}`)
    }
    if (!patFound && offset < head.length) {
      head.set(chunk.subarray(0, head.length - offset), offset)
      const complete = Math.floor(Math.min(offset + chunk.length, head.length) / TS_PACKET_BYTES)
      for (let packet = Math.floor(offset / TS_PACKET_BYTES); packet < complete && !patFound; packet++) {
        const start = packet * TS_PACKET_BYTES
        patFound = isPatPacket(head.subarray(start, start + TS_PACKET_BYTES))
      }
      if (!patFound && complete === PAT_WITHIN_PACKETS) {
        throw notMpegTs(`no program association table in the first ${PAT_WITHIN_PACKETS} packets`)
      }
    }
    offset += chunk.length
    yield chunk
  }
  if (offset === 0 || offset % TS_PACKET_BYTES !== 0) {
    throw notMpegTs(`${offset} bytes is not a whole number of ${TS_PACKET_BYTES}-byte packets`)
  }
  if (!patFound) throw notMpegTs("no program association table")
}
