import { afterEach, describe, expect, it } from "vitest"
import { FfmpegNotFound, resolveFfmpeg, resolveFfprobe } from "../src/Ffmpeg.js"

describe("finding ffmpeg", () => {
  const saved = {
    FFMPEG_PATH: process.env.FFMPEG_PATH,
    FFPROBE_PATH: process.env.FFPROBE_PATH,
    PATH: process.env.PATH,
  }
  afterEach(() => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key]
      else process.env[key] = value
    }
  })

  it("takes FFMPEG_PATH first, and says so when it is wrong", () => {
    process.env.FFMPEG_PATH = "/nonexistent/ffmpeg"
    expect(() => resolveFfmpeg()).toThrow(FfmpegNotFound)
    expect(() => resolveFfmpeg()).toThrow("FFMPEG_PATH=/nonexistent/ffmpeg is not an executable file")
  })

  it("falls back to PATH, and explains how to install it when there is none", () => {
    delete process.env.FFMPEG_PATH
    delete process.env.FFPROBE_PATH
    const found = resolveFfmpeg()
    expect(found).toMatch(/ffmpeg$/)
    expect(resolveFfprobe(undefined, found)).toMatch(/ffprobe$/)
    process.env.PATH = "/nonexistent"
    expect(() => resolveFfmpeg()).toThrow(/ffmpeg not found: install it .*or set FFMPEG_PATH/)
  })
})
