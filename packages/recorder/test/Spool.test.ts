import { spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { readdir, readFile, writeFile } from "node:fs/promises"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type ChannelSpool, parseSegmentList, SessionSpool } from "../src/Spool.js"
import { ffmpeg, ffprobe, tempDir } from "./support/media.js"

const FIRST_SAMPLE_MS = 1_700_000_000_000

const writeSegments = (channel: ChannelSpool): Promise<void> =>
  new Promise((resolve, reject) => {
    const child = spawn(
      ffmpeg,
      [
        ...[
          "-v",
          "error",
          "-f",
          "lavfi",
          "-i",
          "sine=frequency=440:sample_rate=48000",
          "-t",
          "5",
          "-c:a",
          "aac",
        ],
        ...["-f", "segment", "-segment_format", "mpegts", "-segment_time", "2", "-reset_timestamps", "0"],
        ...["-segment_list", channel.runListPath(0), "-segment_list_type", "csv", channel.pattern],
      ],
      { stdio: "ignore" },
    )
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`ffmpeg exited ${code}`))))
  })

describe("the spool", () => {
  let folder: Awaited<ReturnType<typeof tempDir>>
  beforeAll(async () => {
    folder = await tempDir("spool")
  })
  afterAll(async () => {
    await folder?.remove()
  })

  it("reads a segment list, skipping a line still being written", () => {
    expect(parseSegmentList("00000003.ts,0.000000,2.000000\n00000004.ts,2.000000,4.0")).toEqual([
      { index: 3, startSeconds: 0, endSeconds: 2 },
    ])
  })

  it("recovers after a crash: drops what was acknowledged, lists, salvages or drops the rest", async () => {
    const session = new SessionSpool(folder.path, "cap-spool1")
    const channel = session.channel("mic:default")
    await channel.ensure()
    await writeSegments(channel)
    await channel.writeRun({ start_index: 0, first_sample_ms: FIRST_SAMPLE_MS, clock: "device" })
    const list = await channel.readList(0)
    expect(list.map((entry) => entry.index)).toEqual([0, 1, 2])
    // Segment 0 acknowledged (its files not yet deleted when the recorder died), 1 has its sidecar,
    // 2 is listed without one, 3 was cut short (unlisted), 4 is garbage.
    await writeFile(
      `${channel.dir}/channel.json`,
      JSON.stringify({ channel_id: "mic:default", acked_through: 0 }),
    )
    const second = list[1]
    if (second === undefined) throw new Error("no second segment")
    await channel.writeSidecar(
      await channel.recordOf({ start_index: 0, first_sample_ms: FIRST_SAMPLE_MS, clock: "device" }, second),
    )
    const full = await readFile(channel.segmentPath(1))
    await writeFile(channel.segmentPath(3), full.subarray(0, Math.floor((full.length * 0.6) / 188) * 188))
    await writeFile(channel.segmentPath(4), randomBytes(4_000))

    const recovered = await channel.recover(ffprobe)

    expect(recovered.ackedThrough).toBe(0)
    expect(recovered.nextIndex).toBe(4)
    expect(recovered.records.map((record) => record.index)).toEqual([1, 2, 3])
    const [one, two, three] = recovered.records
    expect(one?.start_ms).toBe(FIRST_SAMPLE_MS + 2005)
    expect(two?.start_ms).toBe(FIRST_SAMPLE_MS + 4011)
    expect(two?.duration_ms).toBe(1011)
    // The salvaged segment starts where the last listed one ended, and lasts what ffprobe reads.
    expect(three?.start_ms).toBe(FIRST_SAMPLE_MS + 5021)
    expect(three?.duration_ms).toBeGreaterThan(500)
    expect(three?.duration_ms).toBeLessThan(2000)
    expect(three?.bytes).toBe((await readFile(channel.segmentPath(3))).length)
    const files = await readdir(channel.dir)
    expect(files.filter((name) => /^\d{8}\./.test(name)).sort()).toEqual([
      "00000001.json",
      "00000001.ts",
      "00000002.json",
      "00000002.ts",
      "00000003.json",
      "00000003.ts",
    ])
    expect(await session.channelIds()).toEqual(["mic:default"])

    // Acknowledging moves the mark first, then deletes the files.
    await channel.ack(1)
    expect(await channel.ackedThrough()).toBe(1)
    expect(await channel.hasSegment(1)).toBe(false)
  })
})
