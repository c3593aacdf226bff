import { type CommandId, newSessionId, type SessionEvent, type SessionId } from "@capture/protocol"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { jetstream } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  EventStore,
  openTopology,
  SequenceConflict,
  type StoredEvent,
  type Topology,
  UnreadableEvent,
} from "../src/index.js"
import { create, finish, media, start, stop } from "./commands.js"
import { Session } from "./Session.js"

let server: NatsServerHandle
let nc: NatsConnection
let topology: Topology
let store: EventStore

beforeAll(async () => {
  server = await startNatsServer()
  nc = await connect({ servers: server.url })
  topology = await openTopology(nc, { prefix: "es" })
  store = await EventStore.make(topology)
})
afterAll(async () => {
  store?.close()
  await nc?.close()
  await server?.stop()
})

/** A session's whole history as the host would decide it, with the command id of each event. */
const historyOf = (id: SessionId): ReadonlyArray<SessionEvent> => {
  const s = new Session()
  for (const command of [create(id), start(id), media(id), stop(id), finish(id)]) s.ok(command)
  return s.history
}
const commandIdOf = (event: SessionEvent) => event.command_id as CommandId

/** Appends events in order, each expecting the stream sequence of the one before (0 for the first). */
const appendAll = async (events: ReadonlyArray<SessionEvent>, after = 0): Promise<ReadonlyArray<number>> => {
  const sequences: Array<number> = []
  let expected = after
  for (const event of events) {
    const ack = await store.append(event, expected, commandIdOf(event))
    expect(ack.duplicate).toBe(false)
    sequences.push(ack.streamSequence)
    expected = ack.streamSequence
  }
  return sequences
}

const collect = async (events: AsyncIterable<StoredEvent>): Promise<Array<StoredEvent>> => {
  const out: Array<StoredEvent> = []
  for await (const stored of events) out.push(stored)
  return out
}

describe("EventStore", () => {
  it("appends each session's events on its own subject and reads them back, whole or after a point", async () => {
    const [a, b] = [newSessionId(), newSessionId()]
    const [historyA, historyB] = [historyOf(a), historyOf(b)]
    // Interleaved: each session's expected sequence is its own last event, not the stream's.
    const sequencesA: Array<number> = []
    const sequencesB: Array<number> = []
    for (let i = 0; i < historyA.length; i++) {
      sequencesA.push(...(await appendAll([historyA[i] as SessionEvent], sequencesA.at(-1) ?? 0)))
      sequencesB.push(...(await appendAll([historyB[i] as SessionEvent], sequencesB.at(-1) ?? 0)))
    }

    const readA = await collect(store.read(a))
    expect(readA.map((s) => s.event)).toEqual(historyA)
    expect(readA.map((s) => s.streamSequence)).toEqual(sequencesA)
    const tail = await collect(store.read(a, sequencesA[2]))
    expect(tail.map((s) => s.event.sequence)).toEqual([4, 5])
    expect(await collect(store.read(a, sequencesA.at(-1)))).toEqual([])
    expect(await store.lastStreamSequence(b)).toBe(sequencesB.at(-1))
    const all = await collect(store.readAll())
    expect(all.map((s) => s.streamSequence)).toEqual([...sequencesA, ...sequencesB].sort((x, y) => x - y))
    const ids = await store.sessionIds()
    expect(ids).toEqual([...ids].sort())
    expect(ids).toEqual(expect.arrayContaining([a, b]))
  })

  it("has nothing for a session without events", async () => {
    const id = newSessionId()
    expect(await store.lastStreamSequence(id)).toBe(0)
    expect(await collect(store.read(id))).toEqual([])
  })

  it("refuses an append that does not expect the session's last event, storing nothing", async () => {
    const id = newSessionId()
    const [created, starting] = historyOf(id)
    if (created === undefined || starting === undefined) throw new Error("no history")
    const [first] = await appendAll([created])
    // A second writer that has not seen the first event, and one that is ahead of the stream.
    await expect(store.append(starting, 0, commandIdOf(starting))).rejects.toBeInstanceOf(SequenceConflict)
    await expect(store.append(starting, (first ?? 0) + 100, commandIdOf(starting))).rejects.toMatchObject({
      sessionId: id,
      expected: (first ?? 0) + 100,
    })
    expect((await collect(store.read(id))).map((s) => s.event)).toEqual([created])
  })

  it("stores a command's event once: the same command id again is a duplicate of the first", async () => {
    const id = newSessionId()
    const [created, starting] = historyOf(id)
    if (created === undefined || starting === undefined) throw new Error("no history")
    const first = await store.append(created, 0, commandIdOf(created))
    // A retry whose first try landed but whose ack was lost: same command id, same expectation.
    const retry = await store.append(created, 0, commandIdOf(created))
    expect(retry).toEqual({ streamSequence: first.streamSequence, duplicate: true })
    // The id counts, not the content: a different event under the same command id is the same append.
    const impostor = await store.append(
      { ...created, id: "evt-other" as SessionEvent["id"] },
      0,
      commandIdOf(created),
    )
    expect(impostor).toEqual({ streamSequence: first.streamSequence, duplicate: true })
    await appendAll([starting], first.streamSequence)
    expect((await collect(store.read(id))).map((s) => s.event)).toEqual([created, starting])
  })

  it("stops reading at a message it cannot decode, naming the session and its stream sequence", async () => {
    const id = newSessionId()
    const [created, starting] = historyOf(id)
    if (created === undefined || starting === undefined) throw new Error("no history")
    const [first] = await appendAll([created])
    const garbage = await jetstream(nc).publish(
      topology.eventSubject(id),
      JSON.stringify({ type: "Teleported" }),
    )
    await appendAll([starting], garbage.seq)

    const read: Array<StoredEvent> = []
    const failure = await (async () => {
      try {
        for await (const stored of store.read(id)) read.push(stored)
      } catch (error) {
        return error
      }
      return undefined
    })()
    expect(read.map((s) => s.streamSequence)).toEqual([first])
    expect(failure).toBeInstanceOf(UnreadableEvent)
    expect(failure).toMatchObject({ sessionId: id, streamSequence: garbage.seq })
    // Reading past it is fine.
    expect((await collect(store.read(id, garbage.seq))).map((s) => s.event)).toEqual([starting])
  })
})
