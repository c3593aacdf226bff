import { describe, expect, it } from "vitest"
import { parseChannelList } from "../src/cli/RecordCommand.js"
import { formatBytes } from "../src/cli/RecordProgress.js"
import { formatElapsed, parseDuration } from "../src/Duration.js"

describe("parseDuration", () => {
  it("reads units, compounds and bare seconds", () => {
    expect(parseDuration("30s")).toBe(30_000)
    expect(parseDuration("1m30s")).toBe(90_000)
    expect(parseDuration("1.5m")).toBe(90_000)
    expect(parseDuration("500ms")).toBe(500)
    expect(parseDuration("2h")).toBe(7_200_000)
    expect(parseDuration(" 45 ")).toBe(45_000)
  })

  it("refuses what is not a positive duration", () => {
    for (const text of ["", "abc", "10x", "1m junk", "-5s", "0s"]) expect(() => parseDuration(text)).toThrow()
  })
})

describe("progress helpers", () => {
  it("formats elapsed time, sizes and channel lists", () => {
    expect(formatElapsed(0)).toBe("00:00")
    expect(formatElapsed(83_400)).toBe("01:23")
    expect(formatElapsed(3_723_000)).toBe("1:02:03")
    expect(formatBytes(999)).toBe("999 B")
    expect(formatBytes(2_345_678)).toBe("2.3 MB")
    expect(parseChannelList(" mic:default, display:1,,system_audio:default ")).toEqual([
      "mic:default",
      "display:1",
      "system_audio:default",
    ])
  })
})
