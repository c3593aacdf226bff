import { describe, expect, it } from "vitest"
import { FfmpegNotFound, resolveFfmpeg } from "../src/index.js"

describe("resolveFfmpeg", () => {
  it("takes FFMPEG_PATH / FFPROBE_PATH first", () => {
    const tools = resolveFfmpeg({
      FFMPEG_PATH: "/usr/bin/ffmpeg",
      FFPROBE_PATH: "/usr/bin/ffprobe",
      PATH: "",
    })
    expect(tools).toEqual({ ffmpeg: "/usr/bin/ffmpeg", ffprobe: "/usr/bin/ffprobe" })
  })

  it("falls back to PATH when the variable names no executable", () => {
    const tools = resolveFfmpeg({ FFMPEG_PATH: "/nowhere/ffmpeg", PATH: "/nowhere:/usr/bin" })
    expect(tools.ffmpeg).toBe("/usr/bin/ffmpeg")
    expect(tools.ffprobe).toBe("/usr/bin/ffprobe")
  })

  it("fails at once, saying what it tried, when a tool is nowhere", () => {
    expect(() => resolveFfmpeg({ FFMPEG_PATH: "/nowhere/ffmpeg", PATH: "/nowhere" })).toThrow(FfmpegNotFound)
    expect(() => resolveFfmpeg({ PATH: "/nowhere" })).toThrow(
      /ffmpeg not found \(tried ffmpeg-static, PATH\).*FFMPEG_PATH/,
    )
  })
})
