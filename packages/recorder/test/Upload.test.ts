import { readdir, readFile } from "node:fs/promises"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { CaptureClient, type CaptureEvents, SessionEnded } from "../src/CaptureClient.js"
import { type IngestServer, startIngestServer } from "./support/IngestServer.js"
import { indexesOf, processesMentioning, range, sleep, tempDir, waitFor } from "./support/media.js"

const SMALL = { width: 320, height: 180, frameRate: 15 }

// The sessions are independent, so the cases run side by side.
describe.concurrent("segment upload against a failing or ending server", () => {
  let server: IngestServer
  let spool: Awaited<ReturnType<typeof tempDir>>
  beforeAll(async () => {
    server = await startIngestServer()
    spool = await tempDir("upload")
  })
  afterAll(async () => {
    await server?.close()
    await spool?.remove()
  })

  const newClient = () =>
    new CaptureClient({
      clientToken: "st-test",
      baseUrl: server.url,
      spoolDir: spool.path,
      synthetic: SMALL,
      upload: { baseDelayMs: 100, maxDelayMs: 800 },
    })

  it("retries through 503s: once the server recovers nothing is missing and nothing is sent twice", async () => {
    const client = newClient()
    const errors: Array<CaptureEvents["recording:error"]> = []
    client.on("recording:error", (event) => errors.push(event))
    const duplicates: number[] = []
    client.on("upload:progress", (event) => event.duplicate && duplicates.push(event.index))
    const sessionId = "cap-flaky1"
    // Refused until three PUTs were (however long ffmpeg takes to start), then taken again.
    server.refuseFor(sessionId, 503, 120_000)
    await client.startCaptureSession({ sessionId, channels: ["display:1", "mic:default"] })
    await waitFor(() => server.refused(sessionId) > 2, 30_000, "three refused uploads")
    server.refuseFor(sessionId, 503, 0)
    await waitFor(
      () => ["display:1", "mic:default"].every((c) => server.segments(sessionId, c).length >= 2),
      30_000,
      "two segments per channel after the refusals",
    )
    await client.stopCapture()
    await client.shutdown()

    expect(errors).toEqual([])
    expect(server.refused(sessionId)).toBeGreaterThan(2)
    expect(client.uploadStats().retries).toBeGreaterThan(2)
    for (const channelId of ["display:1", "mic:default"]) {
      const segments = server.segments(sessionId, channelId)
      expect(segments.length).toBeGreaterThanOrEqual(2)
      expect(indexesOf(segments)).toEqual(range(segments.length))
      expect(segments.at(-1)?.final).toBe(true)
      for (const segment of segments) {
        expect(server.okCounts.get(`${sessionId}/${channelId}/${segment.index}`)).toBe(1)
      }
    }
    expect(duplicates).toEqual([])
    expect(server.sessions.get(sessionId)?.status).toBe("stopped")
  })

  it("stops recording when the server answers 409 with current_status stopped", async () => {
    const client = newClient()
    const stopped: Array<CaptureEvents["recording:stopped"]> = []
    client.on("recording:stopped", (event) => stopped.push(event))
    const sessionId = "cap-ended1"
    await client.startCaptureSession({ sessionId, channels: ["display:1", "mic:default"] })
    await waitFor(() => server.segments(sessionId).length >= 1, 10_000, "a first segment")
    server.endSession(sessionId, "stopped")
    await waitFor(() => stopped.length > 0, 10_000, "recording:stopped")

    expect(stopped).toEqual([{ sessionId, reason: "server_ended", currentStatus: "stopped" }])
    expect(client.state).toBe("ended")
    const sessionSpool = join(spool.path, sessionId)
    expect(await processesMentioning(sessionSpool)).toEqual([])
    // Nothing more is sent once the server said so.
    const puts = [...server.putCounts.entries()].filter(([key]) => key.startsWith(sessionId))
    await sleep(1_500)
    expect([...server.putCounts.entries()].filter(([key]) => key.startsWith(sessionId))).toEqual(puts)
    const file = JSON.parse(await readFile(join(sessionSpool, "session.json"), "utf8")) as { status: string }
    expect(file.status).toBe("ended")
    await client.stopCapture()
    expect(server.sessions.get(sessionId)?.stops).toBe(0)

    // The same session cannot be started again from this spool.
    const again = newClient()
    await expect(again.startCaptureSession({ sessionId, channels: ["mic:default"] })).rejects.toBeInstanceOf(
      SessionEnded,
    )
    await client.shutdown()
  })

  it("gives up on a 4xx other than 408/429: recording:error, the segments stay in the spool", async () => {
    const client = newClient()
    const errors: Array<CaptureEvents["recording:error"]> = []
    client.on("recording:error", (event) => errors.push(event))
    let completed = false
    client.on("upload:complete", () => {
      completed = true
    })
    const sessionId = "cap-refused1"
    server.refuseFor(sessionId, 413, 60_000)
    await client.startCaptureSession({ sessionId, channels: ["mic:default"] })
    await waitFor(() => errors.length > 0, 10_000, "recording:error")
    server.refuseFor(sessionId, 413, 0)
    expect(errors[0]).toMatchObject({
      sessionId,
      channelId: "mic:default",
      index: 0,
      error: { _tag: "HttpError", status: 413 },
    })
    expect(server.putCounts.get(`${sessionId}/mic:default/0`)).toBe(1)
    await client.stopCapture()
    await client.shutdown()
    expect(completed).toBe(false)
    expect(server.segments(sessionId)).toEqual([])
    const left = await readdir(join(spool.path, sessionId, "mic:default"))
    expect(left).toContain("00000000.ts")
    expect(left).toContain("00000000.json")
  })

  it("refuses to start without a client token the server accepts", async () => {
    const client = new CaptureClient({
      clientToken: "sk-not-a-client-token",
      baseUrl: server.url,
      spoolDir: spool.path,
      synthetic: SMALL,
    })
    await expect(
      client.startCaptureSession({ sessionId: "cap-unauth1", channels: ["mic:default"] }),
    ).rejects.toMatchObject({ _tag: "HttpError", status: 401 })
    expect(client.state).toBe("idle")
  })
})
