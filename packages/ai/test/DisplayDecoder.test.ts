import { type ScreenRecording, screenRecording } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DisplayDecoder, decodeFrames, videoPtsOf } from "../src/index.js"
import { ffmpeg } from "./support.js"

let recording: ScreenRecording
const decoders: Array<DisplayDecoder> = []

beforeAll(async () => {
  recording = await screenRecording(ffmpeg, [
    { lines: ["Quarterly budget review"], seconds: 4 },
    { lines: ["Invoice overdue reminder"], seconds: 4 },
  ])
})
afterAll(async () => {
  await Promise.all(decoders.map((decoder) => decoder.close()))
})

/** The frame shown at the start of each `1/fps` slot of a segment: every 4th of its 10 fps frames. */
const expected = async (index: number): Promise<Array<Uint8Array>> => {
  const all = await decodeFrames(ffmpeg, recording.segments[index]?.bytes ?? new Uint8Array(), 10)
  return all.filter((_, position) => position % 4 === 0).map((frame) => frame.pixels)
}

describe("DisplayDecoder", () => {
  it("reads each video frame's PTS from the segment's PES headers", () => {
    const pts = videoPtsOf(recording.segments[1]?.bytes ?? new Uint8Array())
    expect(pts).toHaveLength(20)
    expect((pts[1] ?? 0) - (pts[0] ?? 0)).toBe(9_000)
  })

  it("gives each segment's frames at 2.5 fps from one process, restarting when a segment is skipped", async () => {
    const decoder = new DisplayDecoder(ffmpeg, 2.5)
    decoders.push(decoder)
    for (const index of [0, 1, 3, 2, 3]) {
      const frames = await decoder.decode(index, recording.segments[index]?.bytes ?? new Uint8Array())
      expect(frames, `segment ${index}`).toBeDefined()
      expect(frames?.map((frame) => frame.offsetMs)).toEqual([0, 400, 800, 1200, 1600])
      const want = await expected(index)
      expect(frames?.every((frame, k) => Buffer.from(frame.pixels).equals(Buffer.from(want[k] ?? [])))).toBe(
        true,
      )
      expect(frames?.[0]).toMatchObject({ width: 1280, height: 720 })
    }
  }, 180_000)

  it("gives nothing for bytes that are not MPEG-TS, and decodes the next segment still", async () => {
    const decoder = new DisplayDecoder(ffmpeg, 2.5)
    decoders.push(decoder)
    expect(await decoder.decode(0, new Uint8Array([1, 2, 3]))).toBeUndefined()
    expect(await decoder.decode(1, recording.segments[1]?.bytes ?? new Uint8Array())).toHaveLength(5)
  }, 60_000)
})
