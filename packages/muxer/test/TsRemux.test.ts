/**
 * The in-process MPEG-TS → fMP4 remux against ffmpeg's stream copy of the same segments: the same
 * timing (samples, duration, presentation offset), the same sample bytes, the same decoded frames;
 * and what it does not handle goes to ffmpeg.
 */
import { execFile } from "node:child_process"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { resolveFfmpegTools } from "@capture/binaries"
import { boxes } from "@capture/media"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { remuxSegment } from "../src/internal/media.js"
import { concat, fragmentTiming } from "../src/internal/mp4.js"
import { NotRemuxable, remuxTs } from "../src/internal/tsRemux.js"

const exec = promisify(execFile)
const tools = resolveFfmpegTools()
let dir: string

const encode = async (name: string, args: ReadonlyArray<string>): Promise<Uint8Array> => {
  const file = join(dir, name)
  await exec(tools.ffmpeg, ["-hide_banner", "-v", "error", "-y", ...args, "-f", "mpegts", file])
  return readFile(file)
}

const mdat = (b: Uint8Array): Uint8Array => {
  const box = boxes(b).find((x) => x.type === "mdat")
  if (box === undefined) throw new Error("no mdat")
  return b.subarray(box.start + box.headerSize, box.start + box.size)
}

/** framemd5 of every decoded frame of an fMP4 file (init + fragments). */
const decoded = async (name: string, init: Uint8Array, fragments: Uint8Array): Promise<string> => {
  const file = join(dir, name)
  await writeFile(file, concat([init, fragments]))
  const { stdout } = await exec(tools.ffmpeg, ["-v", "error", "-i", file, "-map", "0", "-f", "framemd5", "-"])
  return stdout
    .split("\n")
    .filter((l) => !l.startsWith("#"))
    .join("\n")
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "capture-ts-remux-"))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe("remuxTs", () => {
  const videos: Array<[string, ReadonlyArray<string>]> = [
    [
      "the recorder's H.264 (veryfast, zerolatency, 15 fps)",
      [
        ...["-f", "lavfi", "-i", "testsrc2=s=640x360:r=15", "-t", "2"],
        ...["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p"],
      ],
    ],
    [
      "H.264 with B-frames, high profile, odd size, 29.97 fps",
      [
        ...["-f", "lavfi", "-i", "testsrc2=s=322x242:r=30000/1001", "-t", "2"],
        ...["-c:v", "libx264", "-preset", "fast", "-bf", "3", "-pix_fmt", "yuv420p"],
      ],
    ],
  ]
  for (const [what, args] of videos) {
    it(`remuxes ${what} as ffmpeg does`, async () => {
      const ts = await encode("v.ts", args)
      const native = remuxTs(ts, "video")
      const viaFfmpeg = await remuxSegment(tools, ts, "video", "ffmpeg")
      expect(fragmentTiming(native.fragments)).toEqual(viaFfmpeg.timing)
      expect(Buffer.from(mdat(native.fragments)).equals(Buffer.from(mdat(viaFfmpeg.fragments)))).toBe(true)
      expect(await decoded("n.mp4", native.init, native.fragments)).toBe(
        await decoded("f.mp4", viaFfmpeg.init, viaFfmpeg.fragments),
      )
    })
  }

  for (const [layout, rate] of [
    ["mono", 48_000],
    ["stereo", 44_100],
  ] as const) {
    it(`remuxes AAC ${layout} at ${rate} Hz as ffmpeg does`, async () => {
      const ts = await encode("a.ts", [
        ...["-f", "lavfi", "-i", `sine=f=440:r=${rate}`, "-t", "2", "-ac", layout === "mono" ? "1" : "2"],
        ...["-c:a", "aac", "-b:a", "128k"],
      ])
      const native = remuxTs(ts, "audio")
      const viaFfmpeg = await remuxSegment(tools, ts, "audio", "ffmpeg")
      expect(fragmentTiming(native.fragments)).toEqual(viaFfmpeg.timing)
      expect(Buffer.from(mdat(native.fragments)).equals(Buffer.from(mdat(viaFfmpeg.fragments)))).toBe(true)
      // Decodes to as many samples as the segment holds, with its own channel count.
      const file = join(dir, "n.mp4")
      await writeFile(file, concat([native.init, native.fragments]))
      const { stdout } = await exec(tools.ffprobe, [
        ...["-v", "error", "-select_streams", "a:0", "-count_frames"],
        ...["-show_entries", "stream=channels,sample_rate,nb_read_frames", "-of", "json", file],
      ])
      const stream = (JSON.parse(stdout) as { streams: Array<Record<string, unknown>> }).streams[0]
      expect(stream).toMatchObject({
        channels: layout === "mono" ? 1 : 2,
        sample_rate: String(rate),
        nb_read_frames: String(viaFfmpeg.timing.samples),
      })
    })
  }

  it("leaves other codecs and non-TS bytes to ffmpeg", async () => {
    const mpeg2 = await encode("m.ts", [
      "-f",
      "lavfi",
      "-i",
      "testsrc2=s=320x240:r=25",
      "-t",
      "1",
      "-c:v",
      "mpeg2video",
    ])
    expect(() => remuxTs(mpeg2, "video")).toThrow(NotRemuxable)
    const viaFallback = await remuxSegment(tools, mpeg2, "video")
    expect(viaFallback.timing.samples).toBe(25)
    const mp2 = await encode("p.ts", ["-f", "lavfi", "-i", "sine=f=440", "-t", "1", "-c:a", "mp2"])
    expect(() => remuxTs(mp2, "audio")).toThrow(NotRemuxable)
    expect(() => remuxTs(mp2, "video")).toThrow(NotRemuxable)
    expect(() => remuxTs(new TextEncoder().encode("not a segment".repeat(40)), "video")).toThrow(NotRemuxable)
    await expect(
      remuxSegment(tools, new TextEncoder().encode("not a segment".repeat(40)), "video"),
    ).rejects.toThrow()
  })
})
