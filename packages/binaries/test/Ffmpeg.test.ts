import { mkdtempSync, rmSync, symlinkSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import {
  FfmpegNotFound,
  findOnPath,
  resolveFfmpeg,
  resolveFfmpegTools,
  resolveFfprobe,
} from "../src/index.js"

const system = { ffmpeg: findOnPath("ffmpeg"), ffprobe: findOnPath("ffprobe") }
const elsewhere = mkdtempSync(join(tmpdir(), "capture-binaries-"))
afterAll(() => rmSync(elsewhere, { recursive: true, force: true }))

describe("finding ffmpeg and ffprobe", () => {
  it("finds both on PATH (the machine's ffmpeg)", () => {
    expect(system.ffmpeg).toMatch(/ffmpeg$/)
    expect(resolveFfmpegTools({ PATH: process.env.PATH })).toEqual(system)
  })

  it("takes an explicit path, then FFMPEG_PATH / FFPROBE_PATH, before PATH", () => {
    const ffmpeg = join(elsewhere, "my-ffmpeg")
    const ffprobe = join(elsewhere, "my-ffprobe")
    symlinkSync(system.ffmpeg ?? "", ffmpeg)
    symlinkSync(system.ffprobe ?? "", ffprobe)
    const env = { FFMPEG_PATH: ffmpeg, FFPROBE_PATH: ffprobe, PATH: process.env.PATH }
    expect(resolveFfmpegTools(env)).toEqual({ ffmpeg, ffprobe })
    expect(resolveFfmpeg(system.ffmpeg, env)).toBe(system.ffmpeg)
  })

  it("looks for ffprobe beside the ffmpeg it was given", () => {
    const dir = mkdtempSync(join(elsewhere, "pair-"))
    symlinkSync(system.ffmpeg ?? "", join(dir, "ffmpeg"))
    symlinkSync(system.ffprobe ?? "", join(dir, "ffprobe"))
    expect(resolveFfprobe(undefined, join(dir, "ffmpeg"), { PATH: "" })).toBe(join(dir, "ffprobe"))
  })

  it("refuses a variable naming no executable, saying which, rather than running another ffmpeg", () => {
    const env = { FFMPEG_PATH: "/nowhere/ffmpeg", PATH: process.env.PATH }
    expect(() => resolveFfmpegTools(env)).toThrow(FfmpegNotFound)
    expect(() => resolveFfmpegTools(env)).toThrow("FFMPEG_PATH=/nowhere/ffmpeg is not an executable file")
  })

  it("says what it tried and how to install it when there is none", () => {
    expect(() => resolveFfmpeg(undefined, { PATH: "/nowhere" })).toThrow(
      /ffmpeg not found \(tried FFMPEG_PATH, ffmpeg-static, PATH\): install it .*or set FFMPEG_PATH/,
    )
    expect(() => resolveFfprobe(undefined, undefined, { PATH: "/nowhere" })).toThrow(/ffprobe not found/)
  })
})
