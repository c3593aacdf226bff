/**
 * The local visual engine's eyes: Tesseract OCR (Debian's `tesseract-ocr` with its English model,
 * installed by scripts/bootstrap.sh), one short-lived `tesseract stdin stdout` per frame read. The
 * change detector keeps reads rare: a still screen is read once.
 */
import { spawn, spawnSync } from "node:child_process"

/** A rectangle of a frame, in pixels from its top left corner. */
export interface ScreenRegion {
  readonly left: number
  readonly top: number
  readonly width: number
  readonly height: number
}

/** Reads the text on a frame. */
export interface TextReader {
  /** The text of an image (PGM, or JPEG), lines as tesseract found them; in `region` only, if given. */
  read(image: Uint8Array, region?: ScreenRegion): Promise<string>
}

/**
 * `region` of a binary PGM (`P5 <w> <h> 255`), clamped to the image, as a PGM; undefined when the
 * image is not one (a JPEG is read whole) or the region holds no pixel.
 */
export const cropPgm = (pgm: Uint8Array, region: ScreenRegion): Uint8Array | undefined => {
  const header = /^P5\s+(\d+)\s+(\d+)\s+255\s/.exec(Buffer.from(pgm.subarray(0, 32)).toString("latin1"))
  if (header === null) return undefined
  const width = Number(header[1])
  const height = Number(header[2])
  const left = Math.max(0, Math.floor(region.left))
  const top = Math.max(0, Math.floor(region.top))
  const right = Math.min(width, Math.ceil(region.left + region.width))
  const bottom = Math.min(height, Math.ceil(region.top + region.height))
  if (right <= left || bottom <= top) return undefined
  const head = Buffer.from(`P5\n${right - left} ${bottom - top}\n255\n`, "latin1")
  const out = new Uint8Array(head.length + (right - left) * (bottom - top))
  out.set(head, 0)
  const pixels = header[0].length
  for (let y = top; y < bottom; y++) {
    const from = pixels + y * width
    out.set(pgm.subarray(from + left, from + right), head.length + (y - top) * (right - left))
  }
  return out
}

/** Tesseract could not read a frame. */
export class OcrError extends Error {
  readonly _tag = "OcrError"
}

/** Whether `tesseract` runs here. */
export const tesseractAvailable = (binary = "tesseract"): boolean => {
  const probe = spawnSync(binary, ["--version"], { stdio: "ignore" })
  return probe.status === 0
}

export class TesseractReader implements TextReader {
  constructor(
    private readonly binary = "tesseract",
    private readonly language = "eng",
  ) {}

  read(image: Uint8Array, region?: ScreenRegion): Promise<string> {
    const pgm = (region === undefined ? undefined : cropPgm(image, region)) ?? image
    return new Promise((resolve, reject) => {
      // One thread: tesseract's OpenMP threads cost more CPU than they save on a screen's text.
      const child = spawn(this.binary, ["stdin", "stdout", "-l", this.language, "--psm", "3"], {
        stdio: ["pipe", "pipe", "pipe"],
        env: { ...process.env, OMP_THREAD_LIMIT: "1" },
      })
      const chunks: Array<Buffer> = []
      let errors = ""
      child.stdout.on("data", (chunk: Buffer) => chunks.push(chunk))
      child.stderr.on("data", (chunk: Buffer) => {
        if (errors.length < 2_000) errors += chunk.toString()
      })
      child.on("error", (error) => reject(new OcrError(`tesseract: ${error.message}`)))
      child.stdin.on("error", () => undefined)
      child.on("close", (code) => {
        if (code !== 0) reject(new OcrError(`tesseract exited ${code}: ${errors.trim().slice(0, 500)}`))
        else resolve(Buffer.concat(chunks).toString("utf8"))
      })
      child.stdin.end(pgm)
    })
  }
}

/**
 * The lines of OCR output worth keeping: whitespace collapsed, lines with fewer than two letters
 * or digits (stray marks read from icons and borders) dropped.
 */
export const ocrLines = (text: string): Array<string> =>
  text
    .split(/\r?\n/)
    .map((line) => line.replace(/\s+/g, " ").trim())
    .filter((line) => (line.match(/[\p{L}\p{N}]/gu) ?? []).length >= 2)
