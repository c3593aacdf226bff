/**
 * RtmpIngest against a real publisher: ffmpeg pushes a test pattern with a tone over RTMP; the
 * admitted publish comes out as MPEG-TS video and audio segments (the last of each final) that
 * ffprobe reads back at the pushed length. A refused stream key is closed with nothing handed over.
 */
import { execFile, execFileSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { captureError } from "@capture/protocol"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { RtmpIngest } from "../../src/ingest/RtmpIngest.js"
import type { PushSegment } from "../../src/ingest/SegmentCutter.js"

const ffmpeg = process.env.FFMPEG_PATH ?? "ffmpeg"
const ffprobe = process.env.FFPROBE_PATH ?? "ffprobe"
const PUSH_SECONDS = 6

const push = (url: string) =>
  new Promise<number | null>((resolve) => {
    const child = execFile(ffmpeg, [
      ...["-hide_banner", "-loglevel", "error", "-re"],
      ...["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15", "-f", "lavfi", "-i", "sine=frequency=440"],
      ...["-t", String(PUSH_SECONDS), "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-c:a", "aac"],
      ...["-f", "flv", url],
    ])
    child.on("close", (code) => resolve(code))
  })

const durationOf = (segments: ReadonlyArray<PushSegment>): number => {
  const file = join(mkdtempSync(join(tmpdir(), "rtmp-test-")), "all.ts")
  writeFileSync(file, Buffer.concat(segments.map((s) => s.bytes)))
  return Number(
    execFileSync(ffprobe, ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", file], {
      encoding: "utf8",
    }).trim(),
  )
}

describe("RtmpIngest", () => {
  const segments: Array<PushSegment> = []
  const asked: Array<string> = []
  let ended: (error?: Error) => void = () => undefined
  const end = new Promise<Error | undefined>((resolve) => {
    ended = resolve
  })
  let ingest: RtmpIngest

  beforeAll(async () => {
    ingest = await RtmpIngest.listen({
      host: "127.0.0.1",
      port: 0,
      ffmpegPath: ffmpeg,
      admit: async ({ app, name }) => {
        asked.push(`${app}/${name}`)
        if (app !== "live" || name !== "good-key")
          return { refused: captureError("unauthorized", "unknown stream key") }
        return {
          publisher: {
            onSegment: async (segment) => {
              segments.push(segment)
            },
            onEnd: async (error) => ended(error),
          },
        }
      },
    })
  })
  afterAll(() => ingest.close())

  it("refuses a wrong stream key and hands nothing over", async () => {
    const code = await push(`rtmp://127.0.0.1:${ingest.port}/live/wrong-key`)
    expect(code).not.toBe(0)
    expect(asked).toContain("live/wrong-key")
    expect(segments).toEqual([])
  }, 60_000)

  it("cuts an admitted publish into final-terminated video and audio segments", async () => {
    expect(await push(`rtmp://127.0.0.1:${ingest.port}/live/good-key`)).toBe(0)
    expect(await end).toBeUndefined()
    for (const kind of ["video", "audio"] as const) {
      const ofKind = segments.filter((s) => s.kind === kind)
      expect(ofKind.map((s) => s.index)).toEqual(ofKind.map((_, i) => i))
      expect(ofKind.filter((s) => s.final).map((s) => s.index)).toEqual([ofKind.length - 1])
      expect(ofKind.every((s) => s.bytes[0] === 0x47)).toBe(true)
      expect(durationOf(ofKind)).toBeGreaterThan(PUSH_SECONDS - 0.5)
      expect(durationOf(ofKind)).toBeLessThan(PUSH_SECONDS + 0.5)
    }
  }, 120_000)
})
