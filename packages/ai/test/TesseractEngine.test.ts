/**
 * Tesseract kept loaded (`TesseractEngine`): it reads what the CLI reads, falls back to the CLI
 * where the library does not load, and loses no read when its process is killed mid-read.
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SCREEN_FONT, waitFor } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  cropPgm,
  OcrError,
  ocrLines,
  type ScreenRegion,
  TesseractEngine,
  TesseractReader,
  tesseractAvailable,
} from "../src/index.js"
import { ffmpeg } from "./support.js"

const LINES = ["Quarterly budget review", "Invoice overdue reminder for Thursday"]
let screen: Uint8Array
const engines: Array<TesseractEngine> = []
const engineOf = (options?: ConstructorParameters<typeof TesseractEngine>[0]) => {
  const engine = new TesseractEngine(options)
  engines.push(engine)
  return engine
}

/** The CLI, counting the reads it was given. */
class CountingCli extends TesseractReader {
  reads = 0
  override read(image: Uint8Array, region?: ScreenRegion): Promise<string> {
    this.reads++
    return super.read(image, region)
  }
}

beforeAll(() => {
  // A 1280x720 grey screen of two lines of text, as the pipeline hands frames to the reader (PGM).
  const dir = mkdtempSync(join(tmpdir(), "capture-tesseract-"))
  try {
    const draw = LINES.map((line, n) => {
      const file = join(dir, `line-${n}.txt`)
      writeFileSync(file, line)
      return `drawtext=fontfile=${SCREEN_FONT}:textfile=${file}:fontsize=32:fontcolor=black:x=80:y=${100 + n * 80}`
    }).join(",")
    screen = execFileSync(ffmpeg, [
      ...["-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "color=white:s=1280x720"],
      ...["-vf", `${draw},format=gray`, "-frames:v", "1", "-f", "image2pipe", "-c:v", "pgm", "pipe:1"],
    ])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
afterAll(async () => {
  for (const engine of engines) await engine.close()
})

describe.skipIf(!tesseractAvailable())("tesseract kept loaded", () => {
  it("reads the text on screen in one long-lived process, as the CLI reads it", async () => {
    const engine = engineOf()
    expect(await engine.engine()).toBe("library")
    const pid = engine.pid
    expect(pid).toBeGreaterThan(0)
    const first = ocrLines(await engine.read(screen))
    const second = ocrLines(await engine.read(screen))
    expect(first).toEqual(LINES)
    expect(second).toEqual(first)
    // Both reads by the engine started once.
    expect(engine.pid).toBe(pid)
    expect(engine.starts).toBe(1)
    expect(ocrLines(await new TesseractReader().read(screen))).toEqual(first)
  })

  it("reads a JPEG (what a chat model is sent, read when the model fails) as well", async () => {
    const jpeg = execFileSync(
      ffmpeg,
      [
        ...["-nostdin", "-hide_banner", "-loglevel", "error", "-f", "pgm_pipe", "-i", "pipe:0"],
        ...["-frames:v", "1", "-f", "image2pipe", "-c:v", "mjpeg", "-q:v", "5", "pipe:1"],
      ],
      { input: screen },
    )
    expect([jpeg[0], jpeg[1]]).toEqual([0xff, 0xd8])
    expect(ocrLines(await engineOf().read(jpeg))).toEqual(LINES)
  })

  it("reads only a region when asked: the engine's rectangle, the CLI's crop", async () => {
    // The second line is drawn at y = 180 (32 px text), the first at y = 100.
    const secondLine = { left: 40, top: 165, width: 1200, height: 70 }
    expect(ocrLines(await engineOf().read(screen, secondLine))).toEqual([LINES[1]])
    const cli = new CountingCli()
    const fallback = engineOf({ library: "libtesseract-missing.so.5", fallback: cli })
    expect(ocrLines(await fallback.read(screen, secondLine))).toEqual([LINES[1]])
    expect(cli.reads).toBe(1)
    // A crop is the region's pixels, clamped to the image; outside it, nothing to crop.
    const crop = cropPgm(screen, { left: 1200, top: 700, width: 200, height: 50 })
    expect(
      Buffer.from(crop ?? [])
        .subarray(0, 13)
        .toString("latin1"),
    ).toBe("P5\n80 20\n255\n")
    expect(crop?.length).toBe(13 + 80 * 20)
    expect(cropPgm(screen, { left: 1280, top: 0, width: 10, height: 10 })).toBeUndefined()
  })

  it("reads images in turn when many are asked at once", async () => {
    const engine = engineOf()
    const texts = await Promise.all([1, 2, 3].map(() => engine.read(screen)))
    for (const text of texts) expect(ocrLines(text)).toEqual(LINES)
    expect(engine.starts).toBe(1)
  })

  it("falls back to the CLI where the library does not load", async () => {
    const cli = new CountingCli()
    const engine = engineOf({ library: "libtesseract-missing.so.5", fallback: cli })
    expect(await engine.engine()).toBe("cli")
    expect(ocrLines(await engine.read(screen))).toEqual(LINES)
    expect(cli.reads).toBe(1)
    expect(engine.pid).toBeUndefined()
  })

  it("an image it cannot read is an OcrError, and the engine reads on", async () => {
    const engine = engineOf()
    await expect(engine.read(new TextEncoder().encode("not an image"))).rejects.toBeInstanceOf(OcrError)
    expect(ocrLines(await engine.read(screen))).toEqual(LINES)
    expect(engine.starts).toBe(1)
  })

  it("a read in flight when the engine is killed is read by a new engine", async () => {
    const cli = new CountingCli()
    const engine = engineOf({ fallback: cli })
    expect(await engine.engine()).toBe("library")
    const killed = engine.pid as number
    const reading = engine.read(screen)
    process.kill(killed, "SIGKILL")
    expect(ocrLines(await reading)).toEqual(LINES)
    expect(engine.starts).toBe(2)
    expect(engine.pid).not.toBe(killed)
    expect(cli.reads).toBe(0)
  })

  it("a read that ends every engine it is given goes to the CLI", async () => {
    const cli = new CountingCli()
    const engine = engineOf({ fallback: cli })
    expect(await engine.engine()).toBe("library")
    const reading = engine.read(screen)
    let done = false
    void reading.finally(() => {
      done = true
    })
    // Each engine that takes the read is killed under it.
    const killed = new Set<number>()
    await waitFor(
      async () => {
        const pid = engine.pid
        if (pid !== undefined && !killed.has(pid)) {
          killed.add(pid)
          process.kill(pid, "SIGKILL")
        }
        return done
      },
      (finished) => finished,
      { timeoutMs: 30_000, intervalMs: 5 },
    )
    expect(ocrLines(await reading)).toEqual(LINES)
    expect(cli.reads).toBe(1)
    expect(killed.size).toBe(2)
  })
})
