import { readFile } from "node:fs/promises"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { CaptureClient, type CaptureEvents } from "../src/CaptureClient.js"
import { Channel } from "../src/Channels.js"
import { type IngestServer, startIngestServer } from "./support/IngestServer.js"
import { indexesOf, processesMentioning, range, sleep, tempDir, waitFor } from "./support/media.js"

const SMALL = { width: 320, height: 180, frameRate: 15 }

/** A camera whose device does not exist: its ffmpeg fails every start at once. */
const missingCamera = () =>
  new Channel("camera:missing", "video", "A camera that is gone", {
    kind: "v4l2",
    device: "/dev/video-capture-test-missing",
  })

/** SIGKILLs every process working in `folder` (ffmpeg and its guard); resolves with how many. */
const killAll = async (folder: string): Promise<number> => {
  const pids = await processesMentioning(folder)
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // gone already
    }
  }
  return pids.length
}

// Each case records its own session, so they run side by side.
describe.concurrent("a channel whose ffmpeg fails (real ffmpeg, real HTTP)", () => {
  let server: IngestServer
  let spool: Awaited<ReturnType<typeof tempDir>>
  beforeAll(async () => {
    server = await startIngestServer()
    spool = await tempDir("failure")
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
      segmentSeconds: 1,
      restart: { delayMs: 200, maxFailures: 3, windowMs: 60_000 },
    })

  const collect = (client: CaptureClient) => {
    const errors: Array<CaptureEvents["recording:error"]> = []
    const stopped: Array<CaptureEvents["recording:stopped"]> = []
    client.on("recording:error", (event) => errors.push(event))
    client.on("recording:stopped", (event) => stopped.push(event))
    return { errors, stopped }
  }

  it("starts a killed ffmpeg again: indexes stay contiguous and the session is not failed", async () => {
    const client = newClient()
    const { errors } = collect(client)
    const sessionId = "cap-restart1"
    await client.startCaptureSession({ sessionId, channels: ["mic:default"] })
    await waitFor(() => server.segments(sessionId).length >= 2, 15_000, "two segments")
    expect(await killAll(join(spool.path, sessionId, "mic:default"))).toBeGreaterThan(0)
    await waitFor(() => errors.length > 0, 10_000, "recording:error for the killed run")
    const before = server.segments(sessionId).length
    await waitFor(() => server.segments(sessionId).length >= before + 2, 15_000, "segments after the restart")
    await client.stopCapture()
    await client.shutdown()

    expect(errors.map((e) => [e.channelId, e.error._tag])).toEqual([["mic:default", "CaptureFailed"]])
    expect(errors[0]?.error.message).toMatch(/ffmpeg for mic:default stopped \(/)
    const segments = server.segments(sessionId, "mic:default")
    expect(indexesOf(segments)).toEqual(range(segments.length))
    expect(segments.at(-1)?.final).toBe(true)
    expect(server.sessions.get(sessionId)).toMatchObject({ status: "stopped", fails: 0 })
  })

  it("gives up on a device that does not exist and fails the session with the reason", async () => {
    const client = newClient()
    const { errors, stopped } = collect(client)
    const sessionId = "cap-nodevice1"
    await client.startCaptureSession({ sessionId, channels: [missingCamera()] })
    await waitFor(() => stopped.length > 0, 15_000, "recording:stopped")

    expect(stopped).toEqual([{ sessionId, reason: "capture_failed", currentStatus: "failed" }])
    expect(client.state).toBe("ended")
    // One report per try (the first start, two restarts), then the give-up.
    expect(errors.map((e) => [e.channelId, e.error._tag])).toEqual([
      ["camera:missing", "CaptureFailed"],
      ["camera:missing", "CaptureFailed"],
      ["camera:missing", "CaptureFailed"],
      [undefined, "CaptureGaveUp"],
    ])
    expect(errors[0]?.error.message).toMatch(/ffmpeg for camera:missing could not start/)
    const session = server.sessions.get(sessionId)
    expect(session?.status).toBe("failed")
    expect(session?.fails).toBe(1)
    const failure = session?.failure as { error: { code: string; message: string } }
    expect(failure.error.code).toBe("capture_failed")
    expect(failure.error.message).toContain("camera:missing")
    expect(failure.error.message).toContain("/dev/video-capture-test-missing")
    expect(errors[3]?.error.message).toBe(failure.error.message)

    const sessionSpool = join(spool.path, sessionId)
    expect(await processesMentioning(sessionSpool)).toEqual([])
    const file = JSON.parse(await readFile(join(sessionSpool, "session.json"), "utf8")) as {
      status: string
      server_status: string
    }
    expect(file).toMatchObject({ status: "ended", server_status: "failed" })
    // Nothing runs any more: no retry, no stop sent.
    await sleep(600)
    expect(errors).toHaveLength(4)
    await client.stopCapture()
    expect(session?.stops).toBe(0)
    await client.shutdown()
  })

  it("keeps recording while another stored channel captures", async () => {
    const client = newClient()
    const { errors, stopped } = collect(client)
    const sessionId = "cap-onegone1"
    await client.startCaptureSession({ sessionId, channels: [missingCamera(), "mic:default"] })
    await waitFor(
      () => errors.filter((e) => e.channelId === "camera:missing").length >= 3,
      15_000,
      "the camera's three failures",
    )
    const before = server.segments(sessionId, "mic:default").length
    await waitFor(
      () => server.segments(sessionId, "mic:default").length >= before + 2,
      15_000,
      "the microphone recording on",
    )
    expect(client.state).toBe("recording")
    expect(errors.some((e) => e.error._tag === "CaptureGaveUp")).toBe(false)
    expect(server.sessions.get(sessionId)).toMatchObject({ status: "active", fails: 0 })
    await client.stopCapture()
    await client.shutdown()
    expect(stopped).toEqual([{ sessionId, reason: "stopped" }])
    expect(server.sessions.get(sessionId)?.status).toBe("stopped")
  })
})
