import { type CommandId, newCommandId, newSessionId, type SessionId, type VideoId } from "@capture/protocol"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import { foldEvents, type SessionRuntime, startSessionRuntime } from "../src/index.js"
import { cmd, create, exportOf, finish, media, start, stop } from "./commands.js"

let server: NatsServerHandle
const connections: Array<NatsConnection> = []
const runtimes: Array<SessionRuntime> = []

beforeAll(async () => {
  server = await startNatsServer()
})
afterAll(async () => {
  for (const runtime of runtimes) await runtime.stop()
  for (const nc of connections) await nc.close()
  await server?.stop()
})

/** A separate process-like host: its own connection, cache and (optionally) workers. */
const newRuntime = async (options: Parameters<typeof startSessionRuntime>[1] = {}) => {
  const nc = await connect({ servers: server.url })
  connections.push(nc)
  const runtime = await startSessionRuntime(nc, options)
  runtimes.push(runtime)
  return runtime
}

const ok = async (runtime: SessionRuntime, command: ReturnType<typeof cmd>) => {
  const outcome = await runtime.host.execute(command)
  if (Result.isFailure(outcome)) throw new Error(`${command.type}: ${outcome.failure.message}`)
  return outcome.success
}

const history = async (runtime: SessionRuntime, id: SessionId) => {
  const events = []
  for await (const stored of runtime.events.read(id)) events.push(stored.event)
  return events
}

const displays = Array.from({ length: 8 }, (_, i) => ({ channel_id: `display:${i + 1}` }))

describe("ActorHost on JetStream", () => {
  it("persists each accepted command as one event on the session's subject", async () => {
    const runtime = await newRuntime()
    const id = newSessionId()
    for (const command of [create(id), start(id), media(id), stop(id), finish(id)]) await ok(runtime, command)
    const events = await history(runtime, id)
    expect(events.map((e) => [e.sequence, e.type])).toEqual([
      [1, "SessionCreated"],
      [2, "SessionStarting"],
      [3, "SessionActivated"],
      [4, "SessionStopping"],
      [5, "SessionStopped"],
    ])
    expect(events.every((e) => e.id.startsWith("evt-") && e.schema_version === 1)).toBe(true)
  })

  it("applies a retried command once, even through another host (Nats-Msg-Id)", async () => {
    const a = await newRuntime()
    const b = await newRuntime()
    const id = newSessionId()
    await ok(a, create(id))
    await ok(a, start(id))
    const commandId = newCommandId()
    const first = await ok(a, cmd("ReportMediaReceived", id, { channel_id: "mic:default" }, commandId))
    await ok(b, stop(id)) // b moves the session on; a retry of the media report must not re-apply
    const retry = await ok(
      a,
      cmd("ReportMediaReceived", id, { channel_id: "mic:default" }, commandId as CommandId),
    )
    expect(first.event?.type).toBe("SessionActivated")
    expect(retry.event).toBeNull()
    const events = await history(a, id)
    expect(events.filter((e) => e.type === "SessionActivated")).toHaveLength(1)
  })

  it("loadKnown and loadCovering answer from the cache when it covers what is asked, else catch up", async () => {
    const a = await newRuntime()
    const b = await newRuntime()
    const id = newSessionId()
    const created = await ok(a, create(id))
    const known = await a.host.load(id)
    const started = await ok(b, start(id)) // stored by another host: a's cache knows nothing of it
    const startedAt = (await b.host.load(id)).streamSequence
    expect(created.state.value).toBe("created")
    expect(started.state.value).toBe("starting")
    // What a gateway checks before a command (who owns the session) never changes once stored.
    const cached = await a.host.loadKnown(id)
    expect(cached.state.value).toBe("created")
    expect(cached.state.context.account_id).toBe(known.state.context.account_id)
    expect((await a.host.loadCovering(id, known.streamSequence)).state.value).toBe("created")
    // Asked to cover an event it has not folded, it reads the stream.
    expect((await a.host.loadCovering(id, startedAt)).state.value).toBe("starting")
    expect((await a.host.loadKnown(id)).state.value).toBe("starting")
    // A session this host never saw is read from the stream.
    const other = await newRuntime()
    expect((await other.host.loadKnown(id)).state.value).toBe("starting")
    expect((await other.host.loadKnown(newSessionId())).state.value).toBe("none")
  })

  it("loadRecent answers from a cache caught up within the age asked, joining the lookups of one session", async () => {
    const a = await newRuntime()
    const b = await newRuntime()
    const id = newSessionId()
    await ok(a, create(id))
    await ok(b, start(id)) // stored by another host: a's cache knows nothing of it
    expect((await a.host.loadRecent(id, 60_000)).state.value).toBe("created")
    expect((await a.host.loadRecent(id, 0)).state.value).toBe("starting")
    expect((await a.host.loadRecent(id, 60_000)).state.value).toBe("starting")
    // A host that never saw the session: loads arriving together read its history once.
    const c = await newRuntime()
    const reads = vi.spyOn(c.events, "read")
    const loads = await Promise.all(Array.from({ length: 5 }, () => c.host.loadRecent(id, 60_000)))
    expect(loads.map((loaded) => loaded.state.value)).toEqual(Array(5).fill("starting"))
    expect(reads).toHaveBeenCalledTimes(1)
  })

  it("answers a retry whose first try landed (reply lost) as a duplicate, not a refusal", async () => {
    const a = await newRuntime()
    const b = await newRuntime()
    const id = newSessionId()
    await ok(a, create(id))
    const started = start(id)
    await ok(a, started)
    // b has never seen the session: deciding afresh would refuse a second start with 409.
    const retry = await ok(b, started)
    expect(retry).toMatchObject({ duplicate: true, event: null })
    expect(retry.state.value).toBe("starting")
  })

  it("two hosts racing on one session never fork or lose history", async () => {
    const a = await newRuntime()
    const b = await newRuntime()
    const id = newSessionId()
    await ok(a, create(id))
    await ok(a, start(id, displays))
    await ok(a, media(id, "display:1"))
    await ok(a, stop(id))
    await ok(a, finish(id))
    await b.host.load(id) // both caches now hold sequence 5
    // display:1 is the automatic export, running since the stop: asking for it only reports it.
    const requests = displays.map((d, i) => ok(i % 2 === 0 ? a : b, exportOf(id, d.channel_id)))
    const outcomes = await Promise.all(requests)
    expect(outcomes.map((o) => o.event?.type ?? null)).toEqual([
      null,
      ...displays.slice(1).map(() => "ExportRequested"),
    ])
    const events = await history(a, id)
    expect(events.map((e) => e.sequence)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1))
    const state = foldEvents(events)
    expect(state.context.exports.map((e) => e.video_channel_id).sort()).toEqual(
      displays.map((d) => d.channel_id).sort(),
    )
  })

  it("refuses with the same error code whichever host has the stale cache", async () => {
    const a = await newRuntime()
    const b = await newRuntime()
    const id = newSessionId()
    await ok(a, create(id))
    await b.host.load(id)
    await ok(a, start(id))
    const outcome = await b.host.execute(start(id))
    expect(Result.isFailure(outcome) && outcome.failure).toMatchObject({
      error_code: "invalid_transition",
      current_status: "starting",
    })
  })

  it("snapshot + tail equals a full replay", async () => {
    const writer = await newRuntime({ host: { snapshotEvery: 4 } })
    const id = newSessionId()
    for (const command of [create(id), start(id, displays), media(id, "display:1"), stop(id), finish(id)]) {
      await ok(writer, command)
    }
    for (const d of displays) await ok(writer, exportOf(id, d.channel_id))
    await ok(
      writer,
      cmd("CompleteExport", id, {
        video_channel_id: "display:1",
        video_id: "m-1" as VideoId,
        stream_url: "s",
        player_url: "p",
        asset_ids: { "display:1": "m-2" as VideoId },
      }),
    )
    await new Promise((resolve) => setTimeout(resolve, 200)) // snapshots are written off the hot path
    const snapshot = await writer.snapshots.load(id)
    expect(snapshot?.state.context.sequence).toBe(12)
    const reader = await newRuntime()
    const loaded = await reader.host.load(id)
    expect(loaded.state).toEqual(foldEvents(await history(reader, id)))
    expect(loaded.state.context.sequence).toBe(13)
    expect(loaded.state.context.exported_asset_ids).toEqual({ "display:1": "m-2" })
  })

  it("a session's start timer fails it when no media arrives", async () => {
    const runtime = await newRuntime({ workers: true, host: { startTimeoutMs: 300 } })
    const id = newSessionId()
    await ok(runtime, create(id))
    await ok(runtime, start(id))
    await expect
      .poll(async () => (await runtime.host.load(id)).state.value, { timeout: 10_000 })
      .toBe("failed")
    const state = (await runtime.host.load(id)).state
    expect(state.context.error?.code).toBe("start_timeout")
  })
})
