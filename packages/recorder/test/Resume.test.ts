import { type ChildProcess, spawn } from "node:child_process"
import { readdir } from "node:fs/promises"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { RecordSummary } from "../src/cli/RecordCommand.js"
import { type IngestServer, startIngestServer } from "./support/IngestServer.js"
import { indexesOf, processesMentioning, range, tempDir, waitFor } from "./support/media.js"

const child = fileURLToPath(new URL("./fixtures/recordChild.mjs", import.meta.url))

const startRecorder = (options: Record<string, unknown>) => {
  const process_ = spawn(process.execPath, [child, JSON.stringify(options)], {
    stdio: ["ignore", "pipe", "pipe"],
  })
  let stdout = ""
  let stderr = ""
  process_.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString()
  })
  process_.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    process_.on("close", (code, signal) => resolve({ code, signal })),
  )
  return { process: process_ as ChildProcess, exited, output: () => ({ stdout, stderr }) }
}

describe("a recorder killed mid-recording and restarted on the same spool", () => {
  let server: IngestServer
  let spool: Awaited<ReturnType<typeof tempDir>>
  beforeAll(async () => {
    server = await startIngestServer()
    spool = await tempDir("resume")
  })
  afterAll(async () => {
    await server?.close()
    await spool?.remove()
  })

  it("uploads every segment exactly once, indexes contiguous, after SIGKILL and a restart", async () => {
    const sessionId = "cap-crash1"
    const channels = ["display:1", "mic:default"]
    const options = {
      server: server.url,
      token: "st-test",
      session: sessionId,
      channels,
      synthetic: true,
      spoolDir: spool.path,
      // 1 s segments: the crash and the restart happen sooner; nothing else depends on the length.
      segmentSeconds: 1,
    }
    const first = startRecorder({ ...options, durationMs: 60_000 })
    await waitFor(
      () => channels.every((channelId) => server.segments(sessionId, channelId).length >= 2),
      45_000,
      `two segments per channel from the first recorder (${first.output().stderr})`,
    )
    first.process.kill("SIGKILL")
    expect((await first.exited).signal).toBe("SIGKILL")
    const beforeRestart = new Map(
      channels.map((channelId) => [channelId, server.segments(sessionId, channelId).length]),
    )
    // Its ffmpegs die with it (parent-death signal), closing their last segment.
    const sessionSpool = join(spool.path, sessionId)
    await waitFor(
      async () => (await processesMentioning(sessionSpool)).length === 0,
      5_000,
      "orphaned ffmpeg",
    )

    const second = startRecorder({ ...options, durationMs: 2_500 })
    const exit = await second.exited
    expect(exit, second.output().stderr).toEqual({ code: 0, signal: null })
    const summary = JSON.parse(second.output().stdout) as RecordSummary
    expect(summary).toMatchObject({ sessionId, stoppedBy: "duration", pendingSegments: 0, errors: 0 })
    expect(second.output().stderr).toMatch(/uploaded/)

    const session = server.sessions.get(sessionId)
    expect(session).toMatchObject({ status: "stopped", starts: 2, stops: 1 })
    for (const channelId of channels) {
      const segments = server.segments(sessionId, channelId)
      expect(segments.length).toBeGreaterThan((beforeRestart.get(channelId) ?? 0) + 1)
      expect(indexesOf(segments)).toEqual(range(segments.length))
      expect(segments.map((segment) => segment.final)).toEqual(
        range(segments.length).map((index) => index === segments.length - 1),
      )
      // A PUT in flight when the recorder died may be answered without the recorder knowing: it
      // is sent again (the server says duplicate). Nothing else is sent twice.
      const resent = segments.filter(
        (segment) => (server.putCounts.get(`${sessionId}/${channelId}/${segment.index}`) ?? 0) > 1,
      )
      expect(resent.length).toBeLessThanOrEqual(1)
      // Wall-clock starts never go backwards; the restart shows as one gap, after the segment the
      // first recorder's ffmpeg closed when it died, which the second recorder uploaded.
      const gaps: number[] = []
      for (const [position, segment] of segments.entries()) {
        const previous = segments[position - 1]
        if (previous === undefined) continue
        const gap = segment.startMs - (previous.startMs + previous.durationMs)
        expect(gap).toBeGreaterThanOrEqual(-5)
        if (gap > 300) gaps.push(position)
      }
      expect(gaps.length).toBe(1)
      expect(gaps[0]).toBeGreaterThanOrEqual((beforeRestart.get(channelId) ?? 0) + 1)
    }
    expect(await readdir(spool.path)).not.toContain(sessionId)
  }, 120_000)
})
