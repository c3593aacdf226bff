import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { MediaStore, sha256Hex } from "@capture/media"
import type { ChannelId, SessionEvent, SessionId } from "@capture/protocol"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { type SessionRuntime, SILENT_STOP_REASON, startSessionRuntime } from "../src/index.js"
import { cmd, create, start, stop } from "./commands.js"

const child = fileURLToPath(new URL("./child/reactor.mjs", import.meta.url))

let nats: NatsServerHandle
const connections: NatsConnection[] = []
const runtimes: SessionRuntime[] = []

beforeAll(async () => {
  nats = await startNatsServer()
})
afterEach(async () => {
  for (const runtime of runtimes.splice(0)) await runtime.stop()
  for (const nc of connections.splice(0)) await nc.close()
})
afterAll(async () => {
  await nats?.stop()
})

/** A process's worth of runtime on its own connection, with or without a reactor. */
const open = async (
  prefix: string,
  options: {
    readonly reactor: boolean
    readonly silenceTimeoutMs?: number
    readonly stopTimeoutMs?: number
    readonly lateMediaGraceMs?: number
  },
) => {
  const nc = await connect({ servers: nats.url })
  connections.push(nc)
  const segments = await MediaStore.open(nc, { prefix })
  const runtime = await startSessionRuntime(nc, {
    workers: true,
    topology: { prefix },
    host: {
      stopTimeoutMs: options.stopTimeoutMs ?? 120_000,
      ...(options.lateMediaGraceMs === undefined ? {} : { lateMediaGraceMs: options.lateMediaGraceMs }),
    },
    ...(options.reactor
      ? {
          reactor: { segments, silenceTimeoutMs: options.silenceTimeoutMs ?? 600_000, ackWaitMs: 2_000 },
        }
      : {}),
  })
  runtimes.push(runtime)
  return { runtime, segments }
}

const ok = async (runtime: SessionRuntime, command: Parameters<SessionRuntime["host"]["execute"]>[0]) => {
  const outcome = await runtime.host.execute(command)
  if (Result.isFailure(outcome)) throw new Error(`${command.type}: ${outcome.failure.message}`)
  return outcome.success
}

const bytes = (text: string) => new TextEncoder().encode(text)

/** Stores one segment of a channel as a recorder's upload would. */
const segment = async (
  segments: MediaStore,
  sessionId: SessionId,
  channelId: string,
  index: number,
  final = false,
) => {
  const data = bytes(`${sessionId}/${channelId}/${index}`)
  await segments.put(
    {
      session_id: sessionId,
      channel_id: channelId as ChannelId,
      index,
      start_ms: 1_700_000_000_000 + index * 2_000,
      duration_ms: 2_000,
      sha256: sha256Hex(data),
      final,
      container: "mpegts",
    },
    data,
  )
}

const history = async (runtime: SessionRuntime, id: SessionId): Promise<SessionEvent[]> => {
  const events: SessionEvent[] = []
  for await (const { event } of runtime.events.read(id)) events.push(event)
  return events
}

const count = (events: ReadonlyArray<SessionEvent>, type: SessionEvent["type"]) =>
  events.filter((e) => e.type === type).length

const channels = [{ channel_id: "display:1" }, { channel_id: "mic:default" }]

describe("SessionReactor", () => {
  it("activates, finishes each stop once every final segment is in, and asks for the automatic export once, with two reactors racing", {
    timeout: 60_000,
  }, async () => {
    const a = await open("race", { reactor: true })
    const b = await open("race", { reactor: true })
    const ids = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const { runtime, segments } = i % 2 === 0 ? a : b
        const id = `cap-race${String(i).padStart(22, "0")}` as SessionId
        await ok(runtime, create(id))
        await ok(runtime, start(id, channels))
        // Media only: the reactors activate the session from the record stream.
        await segment(segments, id, "display:1", 0)
        await expect.poll(async () => (await runtime.host.load(id)).state.value).toBe("active")
        await segment(segments, id, "mic:default", 0)
        await ok(runtime, stop(id))
        // Half the sessions send their final segments before the stop is seen, half after.
        await segment(segments, id, "display:1", 1, true)
        await segment(segments, id, "mic:default", 1, true)
        return id
      }),
    )
    for (const id of ids) {
      await expect
        .poll(async () => count(await history(a.runtime, id), "ExportRequested"), { timeout: 20_000 })
        .toBe(1)
    }
    // Give a late duplicate the time to show up, then count each session's events.
    await new Promise((resolve) => setTimeout(resolve, 500))
    for (const id of ids) {
      const events = await history(a.runtime, id)
      expect(events.map((e) => e.type)).toEqual([
        "SessionCreated",
        "SessionStarting",
        "SessionActivated",
        "SessionStopping",
        "SessionStopped",
        "ExportRequested",
      ])
      expect(events.at(-1)?.data).toMatchObject({
        video_channel_id: "display:1",
        automatic: true,
        attempt: 0,
      })
      expect(events.find((e) => e.type === "SessionStopped")?.data).toEqual({ reason: "requested" })
    }
  })

  it("finishes a stop that a reactor SIGKILLed between reading the final segment and issuing it left undone", {
    timeout: 60_000,
  }, async () => {
    // The child runs against the default prefix ("capture"), as a server does.
    const parent = await open("capture", { reactor: false })
    const lines: string[] = []
    const proc: ChildProcess = spawn(process.execPath, [child, nats.url], {
      stdio: ["ignore", "pipe", "inherit"],
    })
    try {
      let buffer = ""
      const ready = new Promise<void>((resolve, reject) => {
        proc.on("exit", (code) => reject(new Error(`reactor process exited (${code})`)))
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
      await ready
      const id = "cap-killed0000000000000000000000" as SessionId
      await ok(parent.runtime, create(id))
      await ok(parent.runtime, start(id, [{ channel_id: "display:1" }]))
      await segment(parent.segments, id, "display:1", 0)
      await expect.poll(async () => (await parent.runtime.host.load(id)).state.value).toBe("active")
      await ok(parent.runtime, stop(id))
      await segment(parent.segments, id, "display:1", 1, true)
      await expect.poll(() => lines.includes(`finishing ${id}`), { timeout: 20_000 }).toBe(true)
      proc.kill("SIGKILL")
      await new Promise((resolve) => proc.once("exit", resolve))
      // The kill landed before the stop: nothing but the durable stop timer (2 minutes) would end it.
      parent.runtime.host.forget(id)
      expect((await parent.runtime.host.load(id)).state.value).toBe("stopping")

      // A reactor started now gets the unacknowledged record again and finishes the stop.
      const nc = await connect({ servers: nats.url })
      connections.push(nc)
      const replacement = await startSessionRuntime(nc, {
        workers: true,
        reactor: { segments: parent.segments, silenceTimeoutMs: 600_000, ackWaitMs: 2_000 },
      })
      runtimes.push(replacement)
      await expect
        .poll(async () => count(await history(parent.runtime, id), "ExportRequested"), { timeout: 20_000 })
        .toBe(1)
      const events = await history(parent.runtime, id)
      expect(count(events, "SessionStopped")).toBe(1)
      expect(events.find((e) => e.type === "SessionStopped")?.data).toEqual({ reason: "requested" })
    } finally {
      proc.kill("SIGKILL")
    }
  })

  it("stops a silent recorder's session when its durable silence timer fires, and clears the timer", {
    timeout: 30_000,
  }, async () => {
    const { runtime, segments } = await open("silencetimer", { reactor: true, silenceTimeoutMs: 1_500 })
    const id = "cap-silenttimer00000000000000000" as SessionId
    await ok(runtime, create(id))
    await ok(runtime, start(id, channels))
    await segment(segments, id, "display:1", 0)
    // Segments keep coming for a while: the timer is set again each time it fires.
    for (let index = 1; index <= 4; index++) {
      await new Promise((resolve) => setTimeout(resolve, 700))
      await segment(segments, id, "display:1", index)
    }
    expect((await runtime.host.load(id)).state.value).toBe("active")
    // Then nothing: the durable timer fires and the reactor stops it.
    await expect
      .poll(async () => (await runtime.host.load(id)).state.context.stop_reason, { timeout: 10_000 })
      .toBe(SILENT_STOP_REASON)
    await expect.poll(async () => (await runtime.host.load(id)).state.value).toBe("stopped")
    // Its timer is gone once it fired on a session that is no longer active.
    await expect
      .poll(async () => (await runtime.topology.timers.get(`${id}.silence`))?.operation ?? "none", {
        timeout: 10_000,
      })
      .not.toBe("PUT")
  })

  it("leaves a silence stop's export to its late_media timer, which asks for it once when the window closes, with two processes", {
    timeout: 30_000,
  }, async () => {
    const settings = { reactor: true, silenceTimeoutMs: 1_000, lateMediaGraceMs: 3_000 }
    const { runtime, segments } = await open("latemedia", settings)
    await open("latemedia", settings)
    const id = "cap-latemedia000000000000000000" as SessionId
    await ok(runtime, create(id))
    await ok(runtime, start(id, channels))
    await segment(segments, id, "display:1", 0)
    await expect
      .poll(async () => (await runtime.host.load(id)).state.value, { timeout: 10_000 })
      .toBe("stopped")
    const stopped = (await runtime.host.load(id)).state
    expect(stopped.context.stop_reason).toBe(SILENT_STOP_REASON)
    const until = Date.parse(stopped.context.late_media_until ?? "")
    expect(until).toBeGreaterThan(Date.now())
    // The window is open: no export asked for yet, the timer armed in the shared bucket.
    expect(count(await history(runtime, id), "ExportRequested")).toBe(0)
    expect((await runtime.topology.timers.get(`${id}.late_media`))?.operation).toBe("PUT")
    await expect
      .poll(async () => count(await history(runtime, id), "ExportRequested"), { timeout: 15_000 })
      .toBe(1)
    const events = await history(runtime, id)
    const requested = events.find((e) => e.type === "ExportRequested")
    expect(requested?.data).toMatchObject({ video_channel_id: "display:1", automatic: true })
    expect(Date.parse(requested?.time ?? "")).toBeGreaterThanOrEqual(until)
    // Both wheels fired it, or one did: either way once, and the window is closed.
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    expect(count(await history(runtime, id), "ExportRequested")).toBe(1)
    expect((await runtime.host.load(id)).state.context.late_media_until).toBeNull()
  })

  it("does not count a pause as silence, and counts from the resume", {
    timeout: 30_000,
  }, async () => {
    const { runtime, segments } = await open("silence", { reactor: true, silenceTimeoutMs: 10_000 })
    const reactor = runtime.reactor
    if (reactor === undefined) throw new Error("no reactor")
    const id = "cap-silent0000000000000000000000" as SessionId
    await ok(runtime, create(id))
    await ok(runtime, start(id, channels))
    await segment(segments, id, "display:1", 0)
    await expect.poll(async () => (await runtime.readModel.get(id))?.session.status).toBe("active")

    await ok(runtime, cmd("PauseChannels", id, {}))
    await expect
      .poll(async () => (await runtime.readModel.get(id))?.session.paused_channel_ids)
      .toEqual(["display:1", "mic:default"])
    // Paused for an hour: not silent (and the silence timer is set again).
    expect(await reactor.checkSilence(id, Date.now() + 3_600_000)).toBe(false)
    expect(await runtime.topology.timers.get(`${id}.silence`)).not.toBeNull()

    await ok(runtime, cmd("ResumeChannels", id, { channel_ids: ["mic:default" as ChannelId] }))
    // One channel runs again: the clock starts at the resume, not at the last segment.
    expect(await reactor.checkSilence(id, Date.now() + 5_000)).toBe(false)
    expect(await reactor.checkSilence(id, Date.now() + 11_000)).toBe(true)
    await expect.poll(async () => (await runtime.host.load(id)).state.value).toBe("stopped")
    const stopped = (await runtime.host.load(id)).state
    expect(stopped.context.stop_reason).toBe(SILENT_STOP_REASON)
    // The channel still paused when it stopped leaves its pause open in the history.
    expect(stopped.context.channel_pauses).toMatchObject([
      { channel_id: "display:1", to_ms: null },
      { channel_id: "mic:default", to_ms: expect.any(Number) },
    ])
  })

  it("parks a record that does not decode and goes on with the next", { timeout: 30_000 }, async () => {
    const { runtime, segments } = await open("parked", { reactor: true })
    const id = "cap-parked0000000000000000000000" as SessionId
    await ok(runtime, create(id))
    await ok(runtime, start(id, channels))
    const nc = connections.at(-1) as NatsConnection
    await nc.request(segments.topology.subject(id), bytes('{"not":"a segment"}'))
    await segment(segments, id, "display:1", 0)
    await expect.poll(async () => (await runtime.host.load(id)).state.value).toBe("active")
  })

  it("judges silence past a last record that is not JSON, and stops the session", {
    timeout: 30_000,
  }, async () => {
    const { runtime, segments } = await open("silencejunk", { reactor: true, silenceTimeoutMs: 10_000 })
    const reactor = runtime.reactor
    if (reactor === undefined) throw new Error("no reactor")
    const id = "cap-silencejunk00000000000000000" as SessionId
    await ok(runtime, create(id))
    await ok(runtime, start(id, channels))
    await segment(segments, id, "display:1", 0)
    await expect.poll(async () => (await runtime.readModel.get(id))?.session.status).toBe("active")
    // The session's records end with bytes that are not JSON: no sign of life, and no exception.
    const nc = connections.at(-1) as NatsConnection
    await nc.request(segments.topology.subject(id), bytes("not json {"))
    expect(await reactor.checkSilence(id, Date.now() + 3_600_000)).toBe(true)
    await expect.poll(async () => (await runtime.host.load(id)).state.value).toBe("stopped")
  })
})
