/**
 * Frames as the visual index looks at them: a display segment (MPEG-TS with H.264) decoded by
 * ffmpeg through pipes into grey frames at a few per second, each a PGM image (what the OCR engine
 * reads), and a small grey thumbnail per frame for the change detector: a screen whose thumbnail
 * did not move is not read again.
 */
import { spawn } from "node:child_process"

/** One decoded frame: `offsetMs` after the segment's first. */
export interface GreyFrame {
  readonly offsetMs: number
  readonly width: number
  readonly height: number
  /** `width × height` bytes, one per pixel, rows top to bottom. */
  readonly pixels: Uint8Array
  /** The same frame in colour as a JPEG file, when asked for (what a chat model looks at). */
  readonly jpeg?: Uint8Array
}

/** ffmpeg could not decode a segment's video. */
export class FrameDecodeError extends Error {
  readonly _tag = "FrameDecodeError"
}

/** Frames wider than this are scaled down first: OCR of a 4K screen costs more and reads no more. */
const MAX_WIDTH = 1920

/** Splits ffmpeg's `image2pipe` PGM output (`P5\n<w> <h>\n255\n<bytes>` per frame). */
export const parsePgmStream = (
  bytes: Buffer,
): Array<{ width: number; height: number; pixels: Uint8Array }> => {
  const frames: Array<{ width: number; height: number; pixels: Uint8Array }> = []
  let at = 0
  const token = (): string => {
    while (at < bytes.length && /\s/.test(String.fromCharCode(bytes[at] ?? 0))) at++
    const from = at
    while (at < bytes.length && !/\s/.test(String.fromCharCode(bytes[at] ?? 0))) at++
    return bytes.subarray(from, at).toString("latin1")
  }
  while (at < bytes.length) {
    if (token() !== "P5") break
    const width = Number(token())
    const height = Number(token())
    const max = Number(token())
    at++ // the single whitespace after the header
    const size = width * height * (max > 255 ? 2 : 1)
    if (!(width > 0 && height > 0) || at + size > bytes.length) break
    frames.push({ width, height, pixels: new Uint8Array(bytes.subarray(at, at + size)) })
    at += size
  }
  return frames
}

/**
 * Splits ffmpeg's `image2pipe` MJPEG output into JPEG files: each runs from its SOI marker through
 * its header segments (lengths given) and entropy-coded data (where 0xFF is stuffed or a restart
 * marker) to its EOI.
 */
export const splitJpegStream = (bytes: Uint8Array): Array<Uint8Array> => {
  const files: Array<Uint8Array> = []
  let at = 0
  while (at + 4 <= bytes.length && bytes[at] === 0xff && bytes[at + 1] === 0xd8) {
    const start = at
    let p = at + 2
    let end = -1
    while (p + 4 <= bytes.length && end < 0) {
      if (bytes[p] !== 0xff) return files
      const marker = bytes[p + 1] ?? 0
      const length = ((bytes[p + 2] ?? 0) << 8) | (bytes[p + 3] ?? 0)
      p += 2 + length
      if (marker !== 0xda) continue
      // Start of scan: entropy-coded data until a marker that is not stuffing or a restart.
      while (p + 1 < bytes.length) {
        if (bytes[p] === 0xff) {
          const next = bytes[p + 1] ?? 0
          if (next === 0xd9) {
            end = p + 2
            break
          }
          if (next !== 0x00 && !(next >= 0xd0 && next <= 0xd7) && next !== 0xff) break
        }
        p++
      }
    }
    if (end < 0) return files
    files.push(bytes.slice(start, end))
    at = end
  }
  return files
}

/** What ffmpeg wrote to one pipe. */
const collect = (stream: NodeJS.ReadableStream): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    stream.on("data", (chunk: Buffer) => chunks.push(chunk))
    stream.on("end", () => resolve(Buffer.concat(chunks)))
    stream.on("error", reject)
  })

/**
 * A segment's frames at `fps` per second (the first at its start), grey, at most 1920 wide; with
 * `jpeg`, each also in colour as a JPEG (one ffmpeg writes both, on two pipes).
 */
export const decodeFrames = (
  ffmpeg: string,
  media: Uint8Array,
  fps: number,
  options: { readonly jpeg?: boolean } = {},
): Promise<Array<GreyFrame>> =>
  new Promise((resolve, reject) => {
    const scaled = `fps=${fps}:round=down,scale='min(${MAX_WIDTH},iw)':-2`
    const outputs = options.jpeg
      ? [
          "-filter_complex",
          `[0:v:0]${scaled},split=2[a][b];[a]format=gray[grey];[b]format=yuvj420p[colour]`,
          "-map",
          "[grey]",
          "-f",
          "image2pipe",
          "-c:v",
          "pgm",
          "pipe:1",
          "-map",
          "[colour]",
          "-f",
          "image2pipe",
          "-c:v",
          "mjpeg",
          "-q:v",
          "5",
          "pipe:3",
        ]
      : ["-map", "0:v:0", "-an", "-vf", `${scaled},format=gray`, "-f", "image2pipe", "-c:v", "pgm", "pipe:1"]
    const child = spawn(
      ffmpeg,
      [
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-threads",
        "1",
        "-f",
        "mpegts",
        "-i",
        "pipe:0",
        ...outputs,
      ],
      { stdio: ["pipe", "pipe", "pipe", "pipe"] },
    )
    const grey = collect(child.stdout)
    const colour = options.jpeg ? collect(child.stdio[3] as NodeJS.ReadableStream) : Promise.resolve(null)
    colour.catch(() => undefined)
    let errors = ""
    child.stderr.on("data", (chunk: Buffer) => {
      if (errors.length < 2_000) errors += chunk.toString()
    })
    child.on("error", (error) => reject(new FrameDecodeError(`ffmpeg: ${error.message}`)))
    child.stdin.on("error", () => undefined)
    child.on("close", (code) => {
      if (code !== 0) {
        reject(new FrameDecodeError(`ffmpeg exited ${code}: ${errors.trim().slice(0, 500)}`))
        return
      }
      Promise.all([grey, colour]).then(([pgm, mjpeg]) => {
        const jpegs = mjpeg === null ? [] : splitJpegStream(mjpeg)
        resolve(
          parsePgmStream(pgm).map((frame, position) => {
            const jpeg = jpegs[position]
            return { ...frame, offsetMs: (position * 1000) / fps, ...(jpeg === undefined ? {} : { jpeg }) }
          }),
        )
      }, reject)
    })
    child.stdin.end(media)
  })

/** A frame as a binary PGM file (what tesseract reads on stdin). */
export const toPgm = (frame: GreyFrame): Uint8Array => {
  const header = Buffer.from(`P5\n${frame.width} ${frame.height}\n255\n`, "latin1")
  const file = new Uint8Array(header.length + frame.pixels.length)
  file.set(header, 0)
  file.set(frame.pixels, header.length)
  return file
}

/** Thumbnail size for the change detector: 48 × 27 cells (16:9), each the mean of its pixels. */
const THUMB_W = 48
const THUMB_H = 27

/**
 * Pixels looked at per cell: every `SAMPLE_STEP`-th row and column. A cell of a 1280×720 frame
 * still averages ~180 of them; a line of text moves its cells as much as before, for a quarter of
 * the reads.
 */
const SAMPLE_STEP = 2

/**
 * The frame's thumbnail, `THUMB_W × THUMB_H` grey bytes. Integer sums over the sampled pixels,
 * each column's cell looked up once per width: it runs on every frame sampled, so it must cost
 * little beside OCR.
 */
export const thumbnailOf = (frame: GreyFrame): Uint8Array => {
  const { width, height, pixels } = frame
  const columnCell = new Uint8Array(width)
  const columnCount = new Uint32Array(THUMB_W)
  for (let x = 0; x < width; x += SAMPLE_STEP) {
    const cell = Math.min(THUMB_W - 1, Math.floor((x * THUMB_W) / width))
    columnCell[x] = cell
    columnCount[cell] = (columnCount[cell] as number) + 1
  }
  const sums = new Uint32Array(THUMB_W * THUMB_H)
  const rowCount = new Uint32Array(THUMB_H)
  for (let y = 0; y < height; y += SAMPLE_STEP) {
    const band = Math.min(THUMB_H - 1, Math.floor((y * THUMB_H) / height))
    rowCount[band] = (rowCount[band] as number) + 1
    const row = band * THUMB_W
    const line = y * width
    for (let x = 0; x < width; x += SAMPLE_STEP) {
      const cell = row + (columnCell[x] as number)
      sums[cell] = (sums[cell] as number) + (pixels[line + x] as number)
    }
  }
  const thumb = new Uint8Array(THUMB_W * THUMB_H)
  for (let band = 0; band < THUMB_H; band++) {
    for (let column = 0; column < THUMB_W; column++) {
      const count = (rowCount[band] as number) * (columnCount[column] as number)
      const cell = band * THUMB_W + column
      thumb[cell] = Math.round((sums[cell] as number) / Math.max(1, count))
    }
  }
  return thumb
}

/**
 * Whether the screen changed between two thumbnails: some cell moved by `threshold` grey levels
 * or more. A line of text appearing moves its cells by tens of levels; video encoding noise on a
 * still screen by one or two.
 */
export const screenChanged = (before: Uint8Array | null, after: Uint8Array, threshold = 6): boolean => {
  if (before === null || before.length !== after.length) return true
  for (let cell = 0; cell < after.length; cell++) {
    if (Math.abs((before[cell] ?? 0) - (after[cell] ?? 0)) >= threshold) return true
  }
  return false
}
