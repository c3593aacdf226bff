import { decodeJson, newSessionId, type SessionCommand, type SessionEvent } from "@capture/protocol"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  openTopology,
  startSessionRuntime,
  TimerEntry,
  TimerStore,
  TimerWheel,
  type Topology,
  timersFor,
  toLifecycleEvent,
} from "../src/index.js"
import { create, start } from "./commands.js"
import { waitFor } from "./poll.js"
import { Session } from "./Session.js"

let server: NatsServerHandle
let nc: NatsConnection
let topology: Topology

beforeAll(async () => {
  server = await startNatsServer()
  nc = await connect({ servers: server.url })
  topology = await openTopology(nc)
})
afterAll(async () => {
  await nc?.close()
  await server?.stop()
})

const decodeTimer = decodeJson(TimerEntry)

describe("TimerWheel", () => {
  it("skips entries that are not timers and still fires the next good one", async () => {
    const fired: Array<SessionCommand> = []
    const logs: Array<string> = []
    const wheel = new TimerWheel(
      topology,
      async (command) => {
        fired.push(command)
      },
      (message) => logs.push(message),
    )
    await wheel.start()
    try {
      const id = newSessionId()
      await topology.timers.put(`${newSessionId()}.stop`, "not json {")
      await topology.timers.put(
        `${newSessionId()}.start`,
        JSON.stringify({ session_id: id, timer: "start", deadline: "soon" }),
      )
      const due = { session_id: id, timer: "stop", deadline: new Date(Date.now() - 1_000).toISOString() }
      await topology.timers.put(`${id}.stop`, JSON.stringify(due))
      await waitFor(
        async () => fired.length,
        (count) => count > 0,
      )
      expect(fired).toEqual([expect.objectContaining({ type: "FireTimer", session_id: id, timer: "stop" })])
      expect(logs.filter((line) => line.includes("is not a timer"))).toHaveLength(2)
    } finally {
      await wheel.stop()
    }
  })
})

describe("TimerStore", () => {
  it("replaces an unreadable entry a session needs, and removes one it does not", async () => {
    const session = new Session()
    const id = newSessionId()
    session.ok(create(id))
    session.ok(start(id))
    const logs: Array<string> = []
    const store = new TimerStore(topology, (message) => logs.push(message))
    await topology.timers.put(`${id}.start`, "not json {")
    await topology.timers.put(`${id}.stop`, JSON.stringify({ session_id: id, timer: "stop" }))
    await store.reconcile(session.state)
    const armed = await topology.timers.get(`${id}.start`)
    expect(armed === null ? undefined : Result.getOrThrow(decodeTimer(armed.value))).toEqual(
      timersFor(session.state)[0],
    )
    expect((await topology.timers.get(`${id}.stop`))?.operation).not.toBe("PUT")
    expect(logs.filter((line) => line.includes("is not a timer"))).toHaveLength(2)
  })
})

describe("TimerStore with this process's wheel watching", () => {
  /** A store whose reads are counted, with its wheel watching the bucket. */
  const watching = async () => {
    let reads = 0
    const counted: Topology = {
      ...topology,
      timers: new Proxy(topology.timers, {
        get: (target, property, receiver) => {
          if (property === "get")
            return (key: string) => {
              reads++
              return target.get(key)
            }
          return Reflect.get(target, property, receiver)
        },
      }),
    }
    const store = new TimerStore(counted)
    const wheel = new TimerWheel(counted, async () => {}, undefined, undefined, store)
    await wheel.start()
    return { store, reads: () => reads, stop: () => wheel.stop() }
  }

  it("reads only the timer a state wants once the watch has seen the others absent, and still arms it", async () => {
    const { store, reads, stop } = await watching()
    try {
      const session = new Session()
      const id = newSessionId()
      session.ok(create(id))
      session.ok(start(id))
      const [wanted] = timersFor(session.state)
      if (wanted === undefined) throw new Error("a starting session has a start timer")
      await waitFor(
        async () => {
          const before = reads()
          await store.reconcile(session.state)
          return reads() - before
        },
        (read) => read === 1,
      )
      // Cancelled behind its back (the view may not know yet): the reconcile reads it and arms it again.
      await topology.timers.delete(`${id}.start`)
      await store.reconcile(session.state)
      const armed = await topology.timers.get(`${id}.start`)
      expect(armed === null ? undefined : Result.getOrThrow(decodeTimer(armed.value))).toEqual(wanted)
      // A timer it does not want, once the watch has seen it, is read and removed.
      await topology.timers.put(`${id}.stop`, JSON.stringify({ ...wanted, timer: "stop" }))
      await waitFor(
        async () => {
          await store.reconcile(session.state)
          return (await topology.timers.get(`${id}.stop`))?.operation
        },
        (operation) => operation !== "PUT",
      )
    } finally {
      await stop()
    }
  })

  it("still removes an unreadable entry the state does not want", async () => {
    const { store, stop } = await watching()
    try {
      const session = new Session()
      const id = newSessionId()
      session.ok(create(id))
      session.ok(start(id))
      await topology.timers.put(`${id}.stop`, "not json {")
      await waitFor(
        async () => (await topology.timers.get(`${id}.stop`))?.operation,
        (operation) => operation === "PUT",
      )
      // Let the watch see it, then reconcile: the view says unreadable, so the key is read and removed.
      await new Promise((resolve) => setTimeout(resolve, 200))
      await store.reconcile(session.state)
      expect((await topology.timers.get(`${id}.stop`))?.operation).not.toBe("PUT")
    } finally {
      await stop()
    }
  })
})

describe("the expiry of a session never started", () => {
  it("fails it `expired` through the durable timer, with the failure a webhook and the WebSocket announce", {
    timeout: 30_000,
  }, async () => {
    const own = await connect({ servers: server.url })
    const runtime = await startSessionRuntime(own, {
      workers: true,
      topology: { prefix: "expiry" },
      host: { expireTimeoutMs: 800 },
    })
    try {
      const waiting = newSessionId()
      const started = newSessionId()
      await runtime.host.execute(create(waiting))
      await runtime.host.execute(create(started))
      await runtime.host.execute(start(started))
      expect(await runtime.topology.timers.get(`${waiting}.expire`)).not.toBeNull()
      const failed = await waitFor(
        async () => (await runtime.host.load(waiting)).state,
        (state) => state.value === "failed",
      )
      expect(failed.context.error).toMatchObject({ code: "expired" })
      const events: Array<SessionEvent> = []
      for await (const { event } of runtime.events.read(waiting)) events.push(event)
      const last = events.at(-1) as SessionEvent
      expect(toLifecycleEvent(last, failed)).toMatchObject({
        event: "capture_session.failed",
        status: "failed",
        data: { error: { code: "expired" } },
      })
      // The started one is past its expiry too, but starting cancelled it.
      await new Promise((resolve) => setTimeout(resolve, 1_000))
      expect((await runtime.host.load(started)).state.value).toBe("starting")
    } finally {
      await runtime.stop()
      await own.close()
    }
  })
})
