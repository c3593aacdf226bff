/**
 * Two muxer instances sharing one session's work while it runs, with the mix made in process:
 * each takes records from the shared consumer, both may mix the same window (the first stored
 * piece wins and is indexed with its own size), and the export comes out once, whole and in sync.
 */
import { writeFile } from "node:fs/promises"
import { join } from "node:path"
import { jetstreamManager } from "@nats-io/jetstream"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Muxer } from "../src/index.js"
import { beeper, beeps, display, flashes, probe, record, toneLevel, upload } from "./fixtures.js"
import {
  drained,
  exportsCompleted,
  type MuxerHarness,
  startHarness,
  startSession,
  stopSession,
} from "./session.js"

describe("Muxer instances", () => {
  let harness: MuxerHarness
  let muxers: Muxer[] = []

  beforeAll(async () => {
    harness = await startHarness("muxer-instances")
    const { nc, runtime, media } = harness
    muxers = await Promise.all(
      [0, 1].map(() => Muxer.start(nc, runtime, { mediaStore: media, publicUrl: "http://127.0.0.1:8080" })),
    )
  })
  afterAll(async () => {
    await Promise.all(muxers.map((m) => m.stop()))
    await harness?.stop()
  })

  it("share a session's pieces, mixed in process, and export it once, in sync", {
    timeout: 120_000,
  }, async () => {
    const { dir, nc, runtime, media } = harness
    const wall = Math.floor(Date.now() / 1000) * 1000 - 60_000
    const channels = await Promise.all([
      record(dir, display("display:1", { offsetMs: 0, seconds: 8 }), wall),
      record(dir, beeper("mic:default", { offsetMs: 0, seconds: 8, hz: 440 }), wall),
      record(dir, beeper("system_audio:default", { offsetMs: 0, seconds: 8, hz: 1000 }), wall),
    ])
    const id = await startSession(
      runtime,
      channels.map((c) => ({ channel_id: c.channelId })),
      "display:1",
    )
    await upload(media, id, channels, (s, c) => s.index < c.segments.length - 1)
    await drained(await jetstreamManager(nc), media.topology.stream, "capture-muxer-media", 60_000)
    // Both instances worked on it while it ran.
    expect(muxers.every((m) => m.piecesMade > 0)).toBe(true)
    await upload(media, id, channels, (s, c) => s.index === c.segments.length - 1)
    await stopSession(runtime, id)
    const completed = await exportsCompleted(runtime, id, 60_000)
    expect(completed).toHaveLength(1)
    const videoId = completed[0]?.data.video_id as string
    const opened = await muxers[0]?.exportStore.open(videoId, "video.mp4")
    const path = join(dir, "video.mp4")
    await writeFile(path, (await opened?.bytes()) ?? new Uint8Array())
    // The manifest's sizes are the stored pieces' sizes: the file reads through whole.
    expect(opened?.size).toBe((await opened?.bytes())?.length)
    const probed = await probe(path)
    expect(probed.streams.map((s) => s.codec_name).sort()).toEqual(["aac", "h264"])
    expect(Math.abs(Number(probed.format.duration) - 8)).toBeLessThan(0.3)
    expect(await toneLevel(path, 440)).toBeGreaterThan(-20)
    expect(await toneLevel(path, 1000)).toBeGreaterThan(-20)
    const flashTimes = await flashes(path)
    for (const hz of [440, 1000]) {
      const beepTimes = await beeps(path, hz)
      expect(beepTimes.length).toBeGreaterThanOrEqual(7)
      for (const b of beepTimes) {
        const nearest = flashTimes.reduce((best, f) => (Math.abs(f - b) < Math.abs(best - b) ? f : best))
        expect(Math.abs(b - nearest)).toBeLessThanOrEqual(0.04)
      }
    }
  })
})
