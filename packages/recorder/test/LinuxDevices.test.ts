import { type LinuxDesktop, startLinuxDesktop } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { CaptureClient } from "../src/CaptureClient.js"
import { PermissionDenied } from "../src/ChannelDiscovery.js"
import { type IngestServer, startIngestServer } from "./support/IngestServer.js"
import { averageColour, decodeErrors, indexesOf, meanVolume, range, sleep, tempDir } from "./support/media.js"

// Real devices: an Xvfb screen painted red, PulseAudio with a virtual microphone and a null sink
// as the speakers, espeak-ng talking into both. Needs the tools `scripts/bootstrap.sh --test`
// installs; without them this suite fails and says which are missing.
describe("capture from real Linux devices (Xvfb, PulseAudio, espeak-ng)", () => {
  let desktop: LinuxDesktop
  let server: IngestServer
  let spool: Awaited<ReturnType<typeof tempDir>>
  beforeAll(async () => {
    desktop = await startLinuxDesktop()
    server = await startIngestServer()
    spool = await tempDir("devices")
    await desktop.speak(
      "micsink",
      "This is the microphone speaking. One two three four five six seven eight nine ten.",
    )
    await desktop.speak(
      "speaker",
      "And this is the system audio, playing through the speakers of the computer.",
    )
  })
  afterAll(async () => {
    await desktop?.stop()
    await server?.close()
    await spool?.remove()
  })

  it("finds the display, microphone and system audio, and records all three", async () => {
    const client = new CaptureClient({
      clientToken: "st-test",
      baseUrl: server.url,
      spoolDir: spool.path,
      env: desktop.env,
      frameRate: 15,
    })
    expect(await client.requestPermission("screen_capture")).toBe("granted")
    expect(await client.requestPermission("microphone")).toBe("granted")

    const channels = await client.listChannels()
    expect(channels.displays.all().map((channel) => channel.id)).toEqual(["display:1"])
    expect(channels.displays.default?.name).toContain("1280x720")
    expect(channels.displays.default?.isPrimary).toBe(true)
    expect(channels.mics.default?.id).toBe("mic:default")
    expect(channels.mics.default?.name).toContain("vmic")
    expect(channels.mics.all().every((channel) => !channel.name.endsWith(".monitor"))).toBe(true)
    expect(channels.systemAudio.default?.id).toBe("system_audio:default")
    expect(channels.systemAudio.default?.name).toContain("speaker")

    const sessionId = "cap-devices1"
    const startedAt = Date.now()
    await client.startCaptureSession({
      sessionId,
      channels: ["display:1", "mic:default", "system_audio:default"],
    })
    const recordingAt = Date.now()
    await sleep(4_000)
    const recordedMs = Date.now() - recordingAt
    await client.stopCapture()
    await client.shutdown()

    for (const channelId of ["display:1", "mic:default", "system_audio:default"]) {
      const segments = server.segments(sessionId, channelId)
      expect(segments.length, channelId).toBeGreaterThanOrEqual(2)
      expect(indexesOf(segments)).toEqual(range(segments.length))
      expect(segments.at(-1)?.final).toBe(true)
      for (const segment of segments) {
        expect(await decodeErrors(segment.bytes), `${channelId} #${segment.index}`).toBe("")
      }
      const total = segments.reduce((sum, segment) => sum + segment.durationMs, 0)
      expect(Math.abs(total - recordedMs)).toBeLessThanOrEqual(2_000)
      // The device's own clock: the first sample was taken while the session was starting.
      const first = segments[0]?.startMs ?? 0
      expect(first).toBeGreaterThanOrEqual(startedAt - 100)
      expect(first).toBeLessThanOrEqual(recordingAt + 100)
    }
    // The screen is red (BT.601: Y≈81, U≈90, V≈240)…
    const colour = await averageColour(server.segments(sessionId, "display:1")[0]?.bytes ?? Buffer.alloc(0))
    expect(colour.v).toBeGreaterThan(200)
    expect(colour.u).toBeLessThan(110)
    // …and both audio channels carry the speech, not silence.
    for (const channelId of ["mic:default", "system_audio:default"]) {
      const volumes = await Promise.all(
        server.segments(sessionId, channelId).map((segment) => meanVolume(segment.bytes)),
      )
      expect(Math.max(...volumes), channelId).toBeGreaterThan(-40)
    }
  })

  it("refuses screen capture without a reachable display, with a reason", async () => {
    const client = new CaptureClient({
      clientToken: "st-test",
      baseUrl: server.url,
      spoolDir: spool.path,
      env: { ...desktop.env, DISPLAY: ":999" },
    })
    const refused = client.requestPermission("screen_capture")
    await expect(refused).rejects.toBeInstanceOf(PermissionDenied)
    await expect(refused).rejects.toThrow(/:999 is not reachable/)
  })
})
