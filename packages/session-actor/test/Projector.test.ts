import { newSessionId, type SessionEvent, type SessionId } from "@capture/protocol"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { foldEvents, Projector, type SessionRuntime, startSessionRuntime } from "../src/index.js"
import { type cmd, create, finish, media, start, stop } from "./commands.js"
import { waitFor } from "./poll.js"

let server: NatsServerHandle
const connections: Array<NatsConnection> = []
const runtimes: Array<SessionRuntime> = []
const projectors: Array<Projector> = []
let deployments = 0

beforeAll(async () => {
  server = await startNatsServer()
})
afterAll(async () => {
  for (const projector of projectors) await projector.stop().catch(() => undefined)
  for (const runtime of runtimes) await runtime.stop()
  for (const nc of connections) await nc.close()
  await server?.stop()
})

/** A process: its own connection and host, on the deployment `prefix`; no workers of its own. */
const newProcess = async (prefix: string) => {
  const nc = await connect({ servers: server.url })
  connections.push(nc)
  const runtime = await startSessionRuntime(nc, { topology: { prefix } })
  runtimes.push(runtime)
  return runtime
}

const newProjector = async (runtime: SessionRuntime) => {
  const projector = new Projector(runtime.topology, runtime.host, runtime.readModel, runtime.timers)
  projectors.push(projector)
  await projector.start()
  return projector
}

const ok = async (runtime: SessionRuntime, command: ReturnType<typeof cmd>) => {
  const outcome = await runtime.host.execute(command)
  if (Result.isFailure(outcome)) throw new Error(`${command.type}: ${outcome.failure.message}`)
}

const viewEntry = (runtime: SessionRuntime, id: SessionId) => runtime.topology.sessions.get(id)
const timerOf = async (runtime: SessionRuntime, id: SessionId, timer: "start" | "stop") => {
  const entry = await runtime.topology.timers.get(`${id}.${timer}`)
  return entry?.operation === "PUT" ? entry.json<{ deadline: string }>() : undefined
}

describe("Projector", () => {
  it("writes each session's view as its events are stored, and keeps its timers in step", async () => {
    const runtime = await newProcess(`pj${++deployments}`)
    await newProjector(runtime)
    const id = newSessionId()
    await ok(runtime, create(id))
    await ok(runtime, start(id))

    const starting = await waitFor(
      () => runtime.readModel.get(id),
      (record) => record?.session.status === "starting",
    )
    expect(starting).toMatchObject({
      account_id: "default",
      sequence: 2,
      stream_sequence: await runtime.events.lastStreamSequence(id),
    })
    expect(await timerOf(runtime, id, "start")).toMatchObject({
      deadline: (await runtime.host.load(id)).state.context.start_deadline,
    })
    await ok(runtime, media(id))
    await ok(runtime, stop(id))
    await waitFor(
      () => runtime.readModel.get(id),
      (record) => record?.session.status === "stopping",
    )
    expect(await timerOf(runtime, id, "start")).toBeUndefined()
    expect(await timerOf(runtime, id, "stop")).toBeDefined()
  })

  it("never moves a view backwards, with two processes projecting the same sessions", async () => {
    const prefix = `pj${++deployments}`
    const [a, b] = [await newProcess(prefix), await newProcess(prefix)]
    await Promise.all([newProjector(a), newProjector(b)])
    const ids = Array.from({ length: 8 }, () => newSessionId())
    // Each session's commands alternate between the two processes' hosts.
    await Promise.all(
      ids.map(async (id) => {
        const commands = [create(id), start(id), media(id), stop(id), finish(id)]
        for (const [i, command] of commands.entries()) await ok(i % 2 === 0 ? a : b, command)
      }),
    )
    for (const id of ids) {
      const record = await waitFor(
        () => a.readModel.get(id),
        (r) => r?.sequence === 5,
      )
      expect(record?.session.status).toBe("stopped")
    }
    // An older state never replaces the view, whoever writes it.
    const [id] = ids as [SessionId]
    const history: Array<SessionEvent> = []
    for await (const stored of a.events.read(id)) history.push(stored.event)
    const before = await viewEntry(a, id)
    expect(await b.readModel.upsert(foldEvents(history.slice(0, 3)), 3)).toBe(false)
    expect((await viewEntry(a, id))?.revision).toBe(before?.revision)
    expect((await a.readModel.get(id))?.sequence).toBe(5)
  })

  it("takes redelivered events as no-ops, and re-arms a timer lost between the append and arming it", async () => {
    const runtime = await newProcess(`pj${++deployments}`)
    const first = await newProjector(runtime)
    const [waiting, done] = [newSessionId(), newSessionId()]
    for (const command of [create(waiting), start(waiting)]) await ok(runtime, command)
    for (const command of [create(done), start(done), media(done), stop(done), finish(done)]) {
      await ok(runtime, command)
    }
    const eventCount = 7
    await waitFor(
      async () => first.processed,
      (processed) => processed === eventCount,
    )
    const revisions = [
      (await viewEntry(runtime, waiting))?.revision,
      (await viewEntry(runtime, done))?.revision,
    ]
    const armed = await timerOf(runtime, waiting, "start")
    expect(armed).toBeDefined()

    // The process died after the append, before arming: the timer is not in the bucket.
    await runtime.topology.timers.delete(`${waiting}.start`)
    // Every event delivered again: a projector starting over on a fresh durable consumer.
    await first.stop()
    const jsm = await jetstreamManager(runtime.topology.nc)
    await jsm.consumers.delete(runtime.topology.eventStream, first.durableName)
    const again = await newProjector(runtime)
    await waitFor(
      async () => again.processed,
      (processed) => processed === eventCount,
    )
    expect([
      (await viewEntry(runtime, waiting))?.revision,
      (await viewEntry(runtime, done))?.revision,
    ]).toEqual(revisions)
    expect(await timerOf(runtime, waiting, "start")).toEqual(armed)
    expect(await timerOf(runtime, done, "stop")).toBeUndefined()
  })

  it("projects a backlog sessions side by side, once for the events of a session that arrive together", async () => {
    const runtime = await newProcess(`pj${++deployments}`)
    const ids = Array.from({ length: 120 }, () => newSessionId())
    // Stored before any projector runs: a backlog, as after an outage or under a burst of writes.
    for (const id of ids) {
      for (const command of [create(id), start(id), media(id), stop(id), finish(id)])
        await ok(runtime, command)
    }
    const projector = await newProjector(runtime)
    await waitFor(
      async () => projector.processed,
      (processed) => processed === ids.length * 5,
      { timeoutMs: 30_000 },
    )
    for (const id of ids) expect((await runtime.readModel.get(id))?.sequence).toBe(5)
    expect(projector.projections).toBeLessThanOrEqual(2 * ids.length)
    const jsm = await jetstreamManager(runtime.topology.nc)
    const info = await jsm.consumers.info(runtime.topology.eventStream, projector.durableName)
    expect({ pending: info.num_pending, unacked: info.num_ack_pending }).toEqual({ pending: 0, unacked: 0 })
  })
})
