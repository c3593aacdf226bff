import { describe, expect, it } from "vitest"
import { progressLine, summaryLines } from "../src/cli/RecordProgress.js"

const stats = {
  uploadedSegments: 25,
  pendingSegments: 2,
  uploadedBytes: 3_900_000,
  retries: 3,
  channels: {
    "display:1": { uploaded: 12, pending: 2, bytes: 3_500_000 },
    "mic:default": { uploaded: 13, pending: 0, bytes: 400_000 },
  },
}

describe("capture record's progress line and summary", () => {
  it("shows each channel's segments uploaded and spooled (waiting), bytes, the rate, retries and the last error", () => {
    expect(progressLine(72_000, stats, 210_400, undefined)).toBe(
      "● 01:12  display:1 12 up 2 spooled 3.5 MB  mic:default 13 up 400.0 kB  210.4 kB/s  retries 3",
    )
    const lastError = { where: "mic:default#4", message: "upload refused (413)", count: 2 }
    expect(progressLine(1_000, stats, 0, lastError)).toMatch(
      / {2}last error mic:default#4: upload refused \(413\)$/,
    )
  })

  it("sums up per channel at the end, with what is left in the spool and the errors", () => {
    const lastError = { where: "display:1", message: "ffmpeg exited", count: 1 }
    expect(summaryLines(25_000, stats, lastError)).toEqual([
      "done in 00:25: 25 segments (3.9 MB) uploaded, 2 left in the spool, 3 retries",
      "  display:1    12 segments  3.5 MB  2 left in the spool",
      "  mic:default  13 segments  400.0 kB",
      "  1 recording error, the last display:1: ffmpeg exited",
    ])
  })
})
