/**
 * The local visual engine's eyes: Tesseract OCR (Debian's `tesseract-ocr` with its English model,
 * installed by scripts/bootstrap.sh), one short-lived `tesseract stdin stdout` per frame read. The
 * change detector keeps reads rare: a still screen is read once.
 */
import { spawn, spawnSync } from "node:child_process"

/** Reads the text on a frame. */
export interface TextReader {
  /** The text of a PGM image, lines as tesseract found them. */
  read(pgm: Uint8Array): Promise<string>
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

  read(pgm: Uint8Array): Promise<string> {
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
