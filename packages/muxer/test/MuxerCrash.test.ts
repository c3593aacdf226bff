import { type ChildProcess, spawn } from "node:child_process"
import { writeFile } from "node:fs/promises"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { rawAssetId, type VideoId } from "@capture/protocol"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Muxer } from "../src/index.js"
import { beeper, display, probe, record, upload } from "./fixtures.js"
import {
  exportsCompleted,
  type MuxerHarness,
  startHarness,
  startSession,
  stopSession,
  waitForHistory,
} from "./session.js"

const child = join(dirname(fileURLToPath(import.meta.url)), "child", "muxer.mjs")

/** Starts a muxer process; resolves once it logged a line matching `until`. */
const startChild = (url: string, lines: string[]): { proc: ChildProcess; ready: Promise<void> } => {
  const proc = spawn(process.execPath, [child, url], { stdio: ["ignore", "pipe", "inherit"] })
  let buffer = ""
  const ready = new Promise<void>((resolve, reject) => {
    proc.on("exit", (code) => reject(new Error(`muxer process exited (${code})`)))
    proc.stdout?.on("data", (chunk: Buffer) => {
      buffer += chunk.toString()
      const parts = buffer.split("\n")
      buffer = parts.pop() ?? ""
      for (const line of parts) {
        lines.push(line)
        if (line === "ready") resolve()
      }
    })
  })
  return { proc, ready }
}

describe("Muxer crash", () => {
  let harness: MuxerHarness
  let replacement: Muxer | undefined
  let proc: ChildProcess | undefined

  beforeAll(async () => {
    harness = await startHarness("muxer-crash")
  })
  afterAll(async () => {
    proc?.kill("SIGKILL")
    await replacement?.stop()
    await harness?.stop()
  })

  it("finishes an export whose muxer was killed mid-way, with the same video id, exported once", {
    timeout: 120_000,
  }, async () => {
    const { dir, nats, nc, runtime, media } = harness
    const wall = Math.floor(Date.now() / 1000) * 1000 - 60_000
    const channels = await Promise.all([
      record(dir, display("display:1", { offsetMs: 0, seconds: 6 }), wall),
      record(dir, beeper("mic:default", { offsetMs: 0, seconds: 6, hz: 440 }), wall),
    ])
    const lines: string[] = []
    const started = startChild(nats.url, lines)
    proc = started.proc
    await started.ready

    const id = await startSession(runtime, [{ channel_id: "display:1" }, { channel_id: "mic:default" }])
    await upload(media, id, channels)
    await stopSession(runtime, id)
    // Kill the process as soon as it has claimed the export and started on it.
    const deadline = Date.now() + 20_000
    while (!lines.some((l) => l.includes(" started") && l.includes(id))) {
      if (Date.now() > deadline)
        throw new Error(`the muxer process never started the export: ${lines.join(" | ")}`)
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    proc.kill("SIGKILL")
    const claimed = /export (m-\S+)/.exec(lines.find((l) => l.includes(id)) ?? "")?.[1]
    expect(claimed).toBeDefined()
    expect(lines.some((l) => l.includes("completed"))).toBe(false)

    replacement = await Muxer.start(nc, runtime, {
      mediaStore: media,
      publicUrl: "http://127.0.0.1:8080",
      ackWaitMs: 2_000,
    })
    const completed = await exportsCompleted(runtime, id, 30_000)
    expect(completed).toHaveLength(1)
    expect(completed[0]?.data.video_id).toBe(claimed)
    // The re-run names the raw assets as the killed run would have: ids follow the claimed video id.
    const expectedAssets = {
      "display:1": rawAssetId(claimed as VideoId, "display:1", "video"),
      "mic:default": rawAssetId(claimed as VideoId, "mic:default", "audio"),
    }
    expect(completed[0]?.data.asset_ids).toEqual(expectedAssets)
    const metadata = await replacement.exportStore.get(claimed as string)
    expect(metadata?.channels.map((c) => [c.channel_id, c.asset_id])).toEqual(Object.entries(expectedAssets))
    const mp4 = await replacement.exportStore.open(claimed as string, "video.mp4")
    expect(mp4?.size).toBeGreaterThan(100_000)
    const path = join(dir, "out.mp4")
    await writeFile(path, (await mp4?.bytes()) ?? new Uint8Array())
    const probed = await probe(path)
    expect(probed.streams.map((s) => s.codec_name).sort()).toEqual(["aac", "h264"])
    expect(Math.abs(Number(probed.format.duration) - 6)).toBeLessThan(0.2)
    // Redeliveries after the completion change nothing.
    await new Promise((resolve) => setTimeout(resolve, 2_500))
    const later = await waitForHistory(runtime, id, () => true)
    expect(later.filter((e) => e.type === "ExportCompleted")).toHaveLength(1)
  })
})
