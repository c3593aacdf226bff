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

describe("a recorder resumed on its spool while the server is down", () => {
  let server: IngestServer
  let spool: Awaited<ReturnType<typeof tempDir>>
  beforeAll(async () => {
    server = await startIngestServer()
    spool = await tempDir("resume-offline")
  })
  afterAll(async () => {
    await server?.close()
    await spool?.remove()
  })

  const channels = ["display:1", "mic:default"]
  const options = (sessionId: string) => ({
    server: server.url,
    token: "st-test",
    session: sessionId,
    channels,
    synthetic: true,
    spoolDir: spool.path,
    segmentSeconds: 1,
  })
  /** A first recorder killed after two segments per channel: its spool is left to resume. */
  const crashedRecording = async (sessionId: string) => {
    const first = startRecorder({ ...options(sessionId), durationMs: 60_000 })
    await waitFor(
      () => channels.every((channelId) => server.segments(sessionId, channelId).length >= 2),
      45_000,
      `two segments per channel from the first recorder (${first.output().stderr})`,
    )
    first.process.kill("SIGKILL")
    await first.exited
    await waitFor(
      async () => (await processesMentioning(join(spool.path, sessionId))).length === 0,
      5_000,
      "orphaned ffmpeg",
    )
  }

  it("keeps retrying its start until the server is back, then uploads everything once", async () => {
    const sessionId = "cap-offline1"
    await crashedRecording(sessionId)
    await server.goOffline()
    // Far more than the five tries a start used to get (about 8 s with the default backoff).
    const second = startRecorder({ ...options(sessionId), durationMs: 2_500, startRetryMs: 120_000 })
    await waitFor(
      () => (second.output().stderr.match(/recording error: /g) ?? []).length >= 6,
      60_000,
      `six failed starts (${second.output().stderr})`,
    )
    expect(second.process.exitCode).toBeNull()
    await server.goOnline()
    const exit = await second.exited
    expect(exit, second.output().stderr).toEqual({ code: 0, signal: null })
    const summary = JSON.parse(second.output().stdout) as RecordSummary
    expect(summary).toMatchObject({ sessionId, stoppedBy: "duration", pendingSegments: 0 })
    for (const channelId of channels) {
      const segments = server.segments(sessionId, channelId)
      expect(indexesOf(segments)).toEqual(range(segments.length))
      expect(segments.at(-1)?.final).toBe(true)
    }
    expect(server.sessions.get(sessionId)).toMatchObject({ status: "stopped", starts: 2, stops: 1 })
    expect(await readdir(spool.path)).not.toContain(sessionId)
  }, 150_000)

  it("gives up after startRetryMs, its spool left for a later run", async () => {
    const sessionId = "cap-offline2"
    await crashedRecording(sessionId)
    await server.goOffline()
    try {
      const startedAt = Date.now()
      const second = startRecorder({ ...options(sessionId), durationMs: 2_500, startRetryMs: 3_000 })
      const exit = await second.exited
      expect(exit.code, second.output().stderr).not.toBe(0)
      expect(Date.now() - startedAt).toBeGreaterThanOrEqual(2_000)
      expect(await readdir(spool.path)).toContain(sessionId)
    } finally {
      await server.goOnline()
    }
  }, 120_000)
})
