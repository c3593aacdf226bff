import { readdir } from "node:fs/promises"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { CaptureClient, type CaptureEvents } from "../src/CaptureClient.js"
import { type IngestServer, startIngestServer } from "./support/IngestServer.js"
import {
  decodeErrors,
  indexesOf,
  probeSegment,
  processesMentioning,
  range,
  sleep,
  tempDir,
} from "./support/media.js"

const SMALL = { width: 320, height: 180, frameRate: 15 }

// Each case records its own session, so they run side by side.
describe.concurrent("CaptureClient (synthetic sources, real ffmpeg, real HTTP)", () => {
  let server: IngestServer
  let spool: Awaited<ReturnType<typeof tempDir>>
  beforeAll(async () => {
    server = await startIngestServer()
    spool = await tempDir("client")
  })
  afterAll(async () => {
    await server?.close()
    await spool?.remove()
  })

  const newClient = (upload?: { baseDelayMs: number; maxDelayMs: number }) =>
    new CaptureClient({
      clientToken: "st-test",
      baseUrl: server.url,
      spoolDir: spool.path,
      synthetic: SMALL,
      ...(upload === undefined ? {} : { upload }),
    })

  it("records audio and video into contiguous, decodable segments whose durations add up", async () => {
    const client = newClient()
    const events: Array<keyof CaptureEvents> = []
    for (const name of [
      "recording:started",
      "recording:stopped",
      "upload:complete",
      "recording:error",
    ] as const) {
      client.on(name, () => events.push(name))
    }
    const progress: Array<CaptureEvents["upload:progress"]> = []
    client.on("upload:progress", (event) => progress.push(event))

    const channels = await client.listChannels()
    const display = channels.displays.default
    const mic = channels.mics.default
    if (display === undefined || mic === undefined) throw new Error("synthetic channels missing")
    expect(display.id).toBe("display:1")
    expect(mic.id).toBe("mic:default")
    expect(channels.systemAudio.default?.id).toBe("system_audio:default")

    const sessionId = "cap-synthetic1"
    await client.startCaptureSession({
      sessionId,
      channels: [display, mic],
      primaryVideoChannelId: display.id,
    })
    const startedAt = Date.now()
    await sleep(6_000)
    const recordedMs = Date.now() - startedAt
    await client.stopCapture()
    await client.shutdown()

    expect(events).toEqual(["recording:started", "upload:complete", "recording:stopped"])
    const session = server.sessions.get(sessionId)
    expect(session?.status).toBe("stopped")
    expect(session?.stops).toBe(1)
    expect(session?.startBody).toEqual({
      session_id: sessionId,
      channels: [
        { channel_id: "display:1", channel_name: display.name, type: "video", store: true, is_primary: true },
        { channel_id: "mic:default", channel_name: mic.name, type: "audio", store: true, is_primary: false },
      ],
      primary_video_channel_id: "display:1",
    })

    expect(server.channels(sessionId)).toEqual(["display:1", "mic:default"])
    for (const [channelId, codec] of [
      ["display:1", "h264"],
      ["mic:default", "aac"],
    ] as const) {
      const segments = server.segments(sessionId, channelId)
      expect(segments.length).toBeGreaterThanOrEqual(3)
      expect(indexesOf(segments)).toEqual(range(segments.length))
      expect(segments.map((segment) => segment.final)).toEqual(
        range(segments.length).map((i) => i === segments.length - 1),
      )
      const probes = await Promise.all(segments.map((segment) => probeSegment(segment.bytes)))
      expect(probes.map((probe) => probe.codecs)).toEqual(segments.map(() => [codec]))
      const errors = await Promise.all(segments.map((segment) => decodeErrors(segment.bytes)))
      expect(errors).toEqual(segments.map(() => ""))
      const total = segments.reduce((sum, segment) => sum + segment.durationMs, 0)
      expect(Math.abs(total - recordedMs)).toBeLessThanOrEqual(2_000)
      // Wall-clock starts: the first near the start, each where the previous one ended.
      const first = segments[0]
      expect(first).toBeDefined()
      expect(Math.abs((first?.startMs ?? 0) - startedAt)).toBeLessThan(1_500)
      for (const [position, segment] of segments.entries()) {
        const previous = segments[position - 1]
        if (previous !== undefined) {
          expect(Math.abs(segment.startMs - (previous.startMs + previous.durationMs))).toBeLessThanOrEqual(5)
        }
      }
    }
    expect(progress.length).toBe(server.segments(sessionId).length)
    expect(progress.every((event) => !event.duplicate)).toBe(true)
    expect(client.uploadStats().pendingSegments).toBe(0)
    // Everything acknowledged: the session's spool is gone, and no ffmpeg is left.
    expect(await readdir(spool.path)).not.toContain(sessionId)
    expect(await processesMentioning(join(spool.path, sessionId))).toEqual([])
  })

  it("pauses a channel: no segments while paused, indexes stay contiguous", async () => {
    const client = newClient()
    const channels = await client.listChannels()
    const display = channels.displays.default
    const mic = channels.mics.default
    if (display === undefined || mic === undefined) throw new Error("synthetic channels missing")
    const sessionId = "cap-pause1"
    await client.startCaptureSession({ sessionId, channels: [display, mic] })
    await sleep(2_500)
    await mic.pause()
    // Captured audio ends by the time the pause resolves (its ffmpeg is gone), however loaded the machine.
    const pausedAt = Date.now()
    expect(mic.paused).toBe(true)
    const pausedSpool = join(spool.path, sessionId, "mic:default")
    expect(await processesMentioning(pausedSpool)).toEqual([])
    await sleep(2_500)
    const resumedAt = Date.now()
    await mic.resume()
    await sleep(2_500)
    await client.stopCapture()
    await client.shutdown()

    const segments = server.segments(sessionId, "mic:default")
    expect(indexesOf(segments)).toEqual(range(segments.length))
    expect(segments.at(-1)?.final).toBe(true)
    // No audio was captured between the pause and the resume…
    for (const segment of segments) {
      const overlap =
        Math.min(segment.startMs + segment.durationMs, resumedAt - 300) -
        Math.max(segment.startMs, pausedAt + 300)
      expect(overlap).toBeLessThanOrEqual(0)
    }
    // …which shows as a jump in the wall-clock starts, once.
    const gaps = segments
      .slice(1)
      .map((segment, position) => {
        const previous = segments[position] as (typeof segments)[number]
        return segment.startMs - (previous.startMs + previous.durationMs)
      })
      .filter((gap) => gap > 1_000)
    expect(gaps.length).toBe(1)
    expect(gaps[0]).toBeGreaterThan(2_000)
    // The display went on without a gap.
    const video = server.segments(sessionId, "display:1")
    expect(indexesOf(video)).toEqual(range(video.length))
    const videoTotal = video.reduce((sum, segment) => sum + segment.durationMs, 0)
    expect(videoTotal).toBeGreaterThan(6_000)
    // The server was told, on the segments' clock: paused where the last segment ended, resumed
    // where the next run started; both before the stop.
    const session = server.sessions.get(sessionId)
    const last = segments.findIndex((segment, position) => {
      const next = segments[position + 1]
      return next !== undefined && next.startMs - (segment.startMs + segment.durationMs) > 1_000
    })
    const before = segments[last] as (typeof segments)[number]
    const after = segments[last + 1] as (typeof segments)[number]
    expect(session?.pauses.map((p) => [p.action, p.channelIds])).toEqual([
      ["pause", ["mic:default"]],
      ["resume", ["mic:default"]],
    ])
    expect(session?.pauses[0]?.atMs).toBe(before.startMs + before.durationMs)
    expect(Math.abs((session?.pauses[1]?.atMs ?? 0) - after.startMs)).toBeLessThan(100)
    expect(session?.stoppedAt).toBeGreaterThanOrEqual(
      session?.pauses[1]?.receivedAt ?? Number.POSITIVE_INFINITY,
    )
  })

  it("tells the server of a pause and a resume made while it refuses them, later, in order, before the stop", async () => {
    const client = newClient({ baseDelayMs: 100, maxDelayMs: 500 })
    const { displays, mics } = await client.listChannels()
    const display = displays.default
    const mic = mics.default
    if (display === undefined || mic === undefined) throw new Error("synthetic channels missing")
    const sessionId = "cap-pause-offline1"
    await client.startCaptureSession({ sessionId, channels: [display, mic] })
    server.refusePausesFor(sessionId, 503, 4_000)
    const refusedUntil = Date.now() + 4_000
    await sleep(1_000)
    await mic.pause()
    await sleep(1_000)
    await mic.resume()
    const session = server.sessions.get(sessionId)
    expect(session?.pauses).toEqual([])
    await client.stopCapture()
    await client.shutdown()

    expect(server.refusedPauses(sessionId)).toBeGreaterThan(0)
    expect(session?.pauses.map((p) => [p.action, p.channelIds])).toEqual([
      ["pause", ["mic:default"]],
      ["resume", ["mic:default"]],
    ])
    const [paused, resumed] = session?.pauses ?? []
    expect(paused?.receivedAt).toBeGreaterThanOrEqual(refusedUntil)
    expect(paused?.atMs).toBeLessThan(resumed?.atMs ?? 0)
    expect(resumed?.atMs).toBeLessThan(refusedUntil)
    expect(session?.stoppedAt).toBeGreaterThanOrEqual(resumed?.receivedAt ?? Number.POSITIVE_INFINITY)
    expect(await readdir(spool.path)).not.toContain(sessionId)
  })

  it("sends from the next recorder the pauses one left in its spool, then what changed since", async () => {
    const sessionId = "cap-pause-restart1"
    const first = newClient({ baseDelayMs: 100, maxDelayMs: 500 })
    const { displays, mics } = await first.listChannels()
    const display = displays.default
    const mic = mics.default
    if (display === undefined || mic === undefined) throw new Error("synthetic channels missing")
    await first.startCaptureSession({ sessionId, channels: [display, mic] })
    server.refusePausesFor(sessionId, 503, 60_000)
    await sleep(1_000)
    await mic.pause()
    await first.shutdown()
    const session = server.sessions.get(sessionId)
    expect(session?.pauses).toEqual([])

    // The next recorder captures the microphone (its own channels are not paused).
    server.refusePausesFor(sessionId, 503, 0)
    const second = newClient({ baseDelayMs: 100, maxDelayMs: 500 })
    const restartedAt = Date.now()
    await second.startCaptureSession({ sessionId, channels: ["display:1", "mic:default"] })
    await sleep(1_000)
    await second.stopCapture()
    await second.shutdown()
    expect(session?.pauses.map((p) => [p.action, p.channelIds])).toEqual([
      ["pause", ["mic:default"]],
      ["resume", ["mic:default"]],
    ])
    expect(session?.pauses[0]?.atMs).toBeLessThan(restartedAt)
    expect(session?.pauses[1]?.atMs).toBeGreaterThanOrEqual(restartedAt)
  })

  it("rejects channels it does not have and a primary that is not a video channel", async () => {
    const client = newClient()
    await expect(
      client.startCaptureSession({ sessionId: "cap-bad1", channels: ["display:9"] }),
    ).rejects.toThrow(/no channel "display:9"/)
    await expect(
      client.startCaptureSession({
        sessionId: "cap-bad2",
        channels: ["mic:default"],
        primaryVideoChannelId: "mic:default",
      }),
    ).rejects.toThrow(/not a video channel/)
    expect(client.state).toBe("idle")
  })
})
