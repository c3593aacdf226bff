/**
 * RTMP push into a session, end to end at the gateway: ffmpeg (a real publisher) pushes a test
 * pattern with a tone to the stream key a `source: "rtmp"` start answered with. The session goes
 * active; a publisher killed mid-way and restarted on another gateway continues the same channels
 * (indexes with no hole and no duplicate, one final each, at the very end); once it leaves for
 * good the grace period stops the session. A wrong key, a second publisher and a stopped session
 * are refused and store nothing.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { MediaSegment } from "@capture/protocol"
import { type NatsServerHandle, publishRtmp, startNatsServer } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { PUBLISHER_DISCONNECTED } from "../../src/ingest/PushSessions.js"
import { startTestGateway, type TestGateway } from "../api/TestGateway.js"

const ffmpeg = process.env.FFMPEG_PATH ?? "ffmpeg"
const ffprobe = process.env.FFPROBE_PATH ?? "ffprobe"
const GRACE_MS = 4_000
const rtmp = { host: "127.0.0.1", port: 0, graceMs: GRACE_MS, leaseTtlMs: 3_000 }
/** Both gateways' logs: every refusal says why. */
const logs: Array<string> = []
const log = (message: string) => {
  logs.push(message)
}

let nats: NatsServerHandle
let first: TestGateway
let second: TestGateway
let dir: string
const children = new Set<ChildProcess>()

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "capture-rtmp-push-"))
  nats = await startNatsServer()
  first = await startTestGateway(nats.url, { rtmp, log })
  second = await startTestGateway(nats.url, { rtmp, log })
}, 60_000)
afterAll(async () => {
  for (const child of children) child.kill("SIGKILL")
  await first?.stop()
  await second?.stop()
  await nats?.stop()
  rmSync(dir, { recursive: true, force: true })
})

const data = (body: Record<string, unknown>) => body.data as Record<string, unknown>
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A publisher pushing 320x180 at 15 fps and a tone, `seconds` long or until killed. */
const push = (url: string, seconds?: number) =>
  publishRtmp(ffmpeg, url, { size: "320x180", rate: 15, seconds }, children)

const pollUntil = async <A>(what: string, probe: () => Promise<A>, done: (value: A) => boolean) => {
  const deadline = Date.now() + 60_000
  for (;;) {
    const value = await probe()
    if (done(value)) return value
    if (Date.now() > deadline) throw new Error(`${what}: not reached (last: ${JSON.stringify(value)})`)
    await sleep(200)
  }
}

const startRtmpSession = async (api: TestGateway, body: Record<string, unknown> = {}) => {
  const created = await api.request("POST", "/collection/default/capture/session", {
    body: { end_user_id: "publisher" },
  })
  const id = data(created.body).id as string
  const started = await api.request("POST", "/capture/session/start", {
    body: { session_id: id, source: "rtmp", ...body },
  })
  return { id, started }
}

const status = async (api: TestGateway, id: string) => (await api.runtime.host.load(id)).state.value as string

const durationOf = (records: ReadonlyArray<MediaSegment>, bytes: ReadonlyArray<Uint8Array>) => {
  const file = join(dir, `${records[0]?.channel_id.replace(":", "-")}-${Date.now()}.ts`)
  writeFileSync(file, Buffer.concat(bytes))
  return Number(
    execFileSync(ffprobe, ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", file], {
      encoding: "utf8",
    }).trim(),
  )
}

describe("RTMP push", () => {
  it("answers a source rtmp start with the publish URL, the OBS setup and the live HLS URL", async () => {
    const { id, started } = await startRtmpSession(first)
    expect(started.status).toBe(200)
    const answer = data(started.body)
    const ingress = answer.rtmp as Record<string, string>
    const setup = answer.rtmp_setup as Record<string, unknown>
    expect(ingress.ingress_id).toBe(id)
    expect(ingress.url).toBe(`rtmp://127.0.0.1:${first.gateway.rtmpPort}/live/${ingress.stream_key}`)
    expect(setup.server).toBe(`rtmp://127.0.0.1:${first.gateway.rtmpPort}/live`)
    expect(setup.stream_key).toBe(ingress.stream_key)
    expect(Object.keys(setup.instructions as object)).toEqual(["step1", "step2", "step3"])
    expect(answer.hls_url).toMatch(new RegExp(`^${first.url}/.*${id}.*camera%3Artmp.*index\\.m3u8\\?`))
    const loaded = await first.runtime.host.load(id)
    expect(loaded.state.context.channels.map((c) => [c.channel_id, c.type])).toEqual([
      ["camera:rtmp", "video"],
      ["mic:rtmp", "audio"],
    ])
  })

  it("refuses a push source with more than one video channel, and a recorder start without channels", async () => {
    const { started } = await startRtmpSession(first, {
      channels: [{ channel_id: "display:1" }, { channel_id: "camera:1" }],
    })
    expect(started.status).toBe(400)
    expect(started.body).toMatchObject({ error_code: "invalid_field", field: "channels" })
    const created = await first.request("POST", "/collection/default/capture/session", {
      body: { end_user_id: "publisher" },
    })
    const bare = await first.request("POST", "/capture/session/start", {
      body: { session_id: data(created.body).id },
    })
    expect(bare.status).toBe(400)
    expect(bare.body).toMatchObject({ error_code: "no_channels" })
  })

  it("refuses source rtmp on a gateway that does not listen for RTMP", async () => {
    const plain = await startTestGateway(nats.url)
    try {
      const { started } = await startRtmpSession(plain)
      expect(started.status).toBe(400)
      expect(started.body).toMatchObject({ error_code: "source_unavailable", field: "source" })
    } finally {
      await plain.stop()
    }
  }, 60_000)

  it("refuses a wrong stream key and a key of another deployment, storing nothing", async () => {
    const { id, started } = await startRtmpSession(first)
    const key = (data(started.body).rtmp as Record<string, string>).stream_key as string
    const forged = `${id}.${"A".repeat(43)}`
    for (const wrong of [forged, "not-a-key", key.slice(0, -1)]) {
      const { code, stderr } = await push(`rtmp://127.0.0.1:${first.gateway.rtmpPort}/live/${wrong}`, 3)
        .exited
      expect(code).not.toBe(0)
      expect(stderr).toMatch(/error|refused|closed|Input\/output/i)
    }
    expect(await first.gateway.services.media.list(id)).toEqual([])
    expect(await status(first, id)).toBe("starting")
    expect(logs.filter((l) => l === "rtmp publish refused: unknown stream key")).toHaveLength(3)
  }, 60_000)

  it("refuses a codec the segments cannot carry, storing nothing, and takes the right one after it", async () => {
    const { id, started } = await startRtmpSession(first)
    const url = (data(started.body).rtmp as Record<string, string>).url as string
    const child = spawn(ffmpeg, [
      ...["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15"],
      ...["-t", "3", "-c:v", "flv1", "-an", "-f", "flv", url],
    ])
    await new Promise((resolve) => child.on("close", resolve))
    expect(logs.some((l) => l.startsWith("rtmp publish refused: unsupported video codec"))).toBe(true)
    expect(await first.gateway.services.media.list(id)).toEqual([])
    expect(await status(first, id)).toBe("starting")
    // The lease went with the refused publish: a right one is admitted at once.
    const right = push(url, 3)
    expect((await right.exited).code).toBe(0)
    await pollUntil(
      "the session active",
      () => status(first, id),
      (now) => now === "active",
    )
  }, 60_000)

  it("continues across a killed publisher reconnecting to another gateway, refuses a second publisher, and stops after the grace period", async () => {
    const { id, started } = await startRtmpSession(first)
    const key = (data(started.body).rtmp as Record<string, string>).stream_key as string
    const media = first.gateway.services.media

    const one = push(`rtmp://127.0.0.1:${first.gateway.rtmpPort}/live/${key}`)
    await pollUntil(
      "two stored segments of each channel",
      () => media.list(id),
      (records) =>
        records.filter((r) => r.channel_id === "camera:rtmp").length >= 2 &&
        records.filter((r) => r.channel_id === "mic:rtmp").length >= 2,
    )
    expect(await status(first, id)).toBe("active")

    // A second publisher on the same key, on the other gateway: refused while the first pushes.
    const intruder = await push(`rtmp://127.0.0.1:${second.gateway.rtmpPort}/live/${key}`, 3).exited
    expect(intruder.code).not.toBe(0)
    expect(logs).toContain(`rtmp publish refused: another publisher is pushing to session ${id}`)

    one.child.kill("SIGKILL")
    await one.exited
    await sleep(1_000)
    // Reconnects within the grace period, on the other gateway: the same session goes on.
    const two = push(`rtmp://127.0.0.1:${second.gateway.rtmpPort}/live/${key}`, 6)
    expect((await two.exited).code).toBe(0)
    expect(await status(first, id)).toBe("active")

    // Gone for good: after the grace period the session stops by itself, every channel final.
    const stopped = await pollUntil(
      "the session stopped",
      () => first.runtime.host.load(id),
      (loaded) => loaded.state.value === "stopped" || loaded.state.value === "exported",
    )
    expect(stopped.state.context.stop_reason).toBe(PUBLISHER_DISCONNECTED)

    const records = await media.list(id)
    for (const channel of ["camera:rtmp", "mic:rtmp"]) {
      const ofChannel = records.filter((r) => r.channel_id === channel).sort((a, b) => a.index - b.index)
      // Indexes 0…n-1: no hole, no duplicate, across the two publishes and the two gateways.
      expect(ofChannel.map((r) => r.index)).toEqual(ofChannel.map((_, i) => i))
      expect(ofChannel.filter((r) => r.final).map((r) => r.index)).toEqual([ofChannel.length - 1])
      for (const [i, r] of ofChannel.entries()) {
        const previous = ofChannel[i - 1]
        if (previous !== undefined)
          expect(r.start_ms).toBeGreaterThanOrEqual(previous.start_ms + previous.duration_ms)
      }
      // Every segment plays back; together they hold both pushes: the second alone is 6 s, the
      // first at least the two segments waited for. (ffprobe reads a short AAC segment's length
      // only roughly, so each is not held to its record's duration.)
      let probed = 0
      for (const r of ofChannel) {
        const seconds = durationOf([r], [(await media.read(id, channel, r.index)) as Uint8Array])
        expect(seconds).toBeGreaterThan(0)
        probed += seconds
      }
      expect(probed).toBeGreaterThan(8)
      expect(ofChannel.reduce((sum, r) => sum + r.duration_ms, 0)).toBeGreaterThan(8_000)
    }

    // The key opens nothing once the session stopped.
    const late = await push(`rtmp://127.0.0.1:${first.gateway.rtmpPort}/live/${key}`, 2).exited
    expect(late.code).not.toBe(0)
    expect(logs.some((l) => l.startsWith(`rtmp publish refused: session ${id} is stopp`))).toBe(true)
    expect((await media.list(id)).length).toBe(records.length)
  }, 180_000)

  it("hands a session over when the gateway holding its publisher away shuts down: a reconnect elsewhere continues it", async () => {
    const third = await startTestGateway(nats.url, { rtmp, log })
    let thirdStopped = false
    try {
      const { id, started } = await startRtmpSession(first)
      const key = (data(started.body).rtmp as Record<string, string>).stream_key as string
      const media = first.gateway.services.media
      const publisher = push(`rtmp://127.0.0.1:${third.gateway.rtmpPort}/live/${key}`)
      await pollUntil(
        "two stored video segments",
        () => media.list(id),
        (records) => records.filter((r) => r.channel_id === "camera:rtmp").length >= 2,
      )
      publisher.child.kill("SIGKILL")
      await publisher.exited
      // Shut down within the grace period: the held-back segments are stored, not final.
      await third.stop()
      thirdStopped = true
      const reconnect = push(`rtmp://127.0.0.1:${first.gateway.rtmpPort}/live/${key}`, 4)
      expect((await reconnect.exited).code).toBe(0)
      await pollUntil(
        "the session stopped",
        () => status(first, id),
        (now) => now === "stopped" || now === "exported",
      )
      const records = await media.list(id)
      for (const channel of ["camera:rtmp", "mic:rtmp"]) {
        const ofChannel = records.filter((r) => r.channel_id === channel).sort((a, b) => a.index - b.index)
        expect(ofChannel.map((r) => r.index)).toEqual(ofChannel.map((_, i) => i))
        expect(ofChannel.filter((r) => r.final).map((r) => r.index)).toEqual([ofChannel.length - 1])
        expect(ofChannel.reduce((sum, r) => sum + r.duration_ms, 0)).toBeGreaterThan(7_000)
      }
    } finally {
      if (!thirdStopped) await third.stop()
    }
  }, 120_000)

  it("closes the publish when the session is stopped through the API; its last segments are final", async () => {
    const { id, started } = await startRtmpSession(first)
    const key = (data(started.body).rtmp as Record<string, string>).stream_key as string
    const media = first.gateway.services.media
    const publisher = push(`rtmp://127.0.0.1:${first.gateway.rtmpPort}/live/${key}`)
    await pollUntil(
      "a stored video segment",
      () => media.list(id),
      (records) => records.some((r) => r.channel_id === "camera:rtmp"),
    )
    const stop = await first.request("POST", `/capture/session/${id}/stop`)
    expect(stop.status).toBe(200)
    // The gateway closes the publish: ffmpeg ends on its own.
    await publisher.exited
    const stopped = await pollUntil(
      "the session stopped",
      () => first.runtime.host.load(id),
      (loaded) => loaded.state.value === "stopped" || loaded.state.value === "exported",
    )
    expect(stopped.state.context.stop_reason).toBe("requested")
    const records = await media.list(id)
    for (const channel of ["camera:rtmp", "mic:rtmp"]) {
      const ofChannel = records.filter((r) => r.channel_id === channel).sort((a, b) => a.index - b.index)
      expect(ofChannel.map((r) => r.index)).toEqual(ofChannel.map((_, i) => i))
      expect(ofChannel.filter((r) => r.final).map((r) => r.index)).toEqual([ofChannel.length - 1])
    }
  }, 120_000)
})
