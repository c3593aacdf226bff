import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { type JetStreamManager, jetstreamManager, type PubAck } from "@nats-io/jetstream"
import {
  ClosedConnectionError,
  connect,
  type NatsConnection,
  NoRespondersError,
  TimeoutError,
} from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { isTransient, isWrongLastSequence, JetStreamPublisher } from "../src/index.js"

let server: NatsServerHandle
let nc: NatsConnection
let jsm: JetStreamManager
const encoder = new TextEncoder()
const decoder = new TextDecoder()

beforeAll(async () => {
  server = await startNatsServer()
  nc = await connect({ servers: server.url })
  jsm = await jetstreamManager(nc)
  await jsm.streams.add({ name: "PUB", subjects: ["pub.>"] })
})
afterAll(async () => {
  await nc?.close()
  await server?.stop()
})

const storedCount = async () => (await jsm.streams.info("PUB")).state.messages

describe("JetStreamPublisher", () => {
  it("hands each publish its own ack with a thousand in flight", async () => {
    const publisher = new JetStreamPublisher(nc)
    const sent = Array.from({ length: 1_000 }, (_, i) => ({
      subject: `pub.many.${i % 20}`,
      body: `message ${i}`,
    }))
    const acks = await Promise.all(sent.map((m) => publisher.publish(m.subject, encoder.encode(m.body))))
    expect(new Set(acks.map((a) => a.seq)).size).toBe(sent.length)
    for (const [i, ack] of acks.entries()) {
      const stored = await jsm.streams.getMessage("PUB", { seq: ack.seq })
      expect([stored?.subject, decoder.decode(stored?.data)]).toEqual([sent[i]?.subject, sent[i]?.body])
      expect([ack.stream, ack.duplicate]).toEqual(["PUB", false])
    }
    expect(publisher.pending).toBe(0)
  })

  it("refuses a stale expected subject sequence with JetStream's error, storing nothing", async () => {
    const publisher = new JetStreamPublisher(nc)
    const first = await publisher.publish("pub.guarded", encoder.encode("1"), { lastSubjectSequence: 0 })
    const before = await storedCount()
    const stale = publisher.publish("pub.guarded", encoder.encode("2"), { lastSubjectSequence: 0 })
    await expect(stale).rejects.toSatisfy(isWrongLastSequence)
    expect(await storedCount()).toBe(before)
    const next = await publisher.publish("pub.guarded", encoder.encode("2"), {
      lastSubjectSequence: first.seq,
    })
    expect(next.seq).toBeGreaterThan(first.seq)
  })

  it("stores a message id once and says so when it comes again", async () => {
    const publisher = new JetStreamPublisher(nc)
    const first = await publisher.publish("pub.dedupe", encoder.encode("x"), { msgId: "same-id" })
    const again = await publisher.publish("pub.dedupe", encoder.encode("x"), { msgId: "same-id" })
    expect([again.seq, again.duplicate, first.duplicate]).toEqual([first.seq, true, false])
  })

  it("rolls a subject up to the new message when asked, keeping the other subjects", async () => {
    await jsm.streams.add({ name: "ROLL", subjects: ["roll.>"], allow_rollup_hdrs: true })
    const publisher = new JetStreamPublisher(nc)
    await publisher.publish("roll.a", encoder.encode("1"))
    await publisher.publish("roll.a", encoder.encode("2"))
    await publisher.publish("roll.b", encoder.encode("kept"))
    const last = await publisher.publish("roll.a", encoder.encode("3"), { rollUpSubject: true })
    const info = await jsm.streams.info("ROLL", { subjects_filter: "roll.>" })
    expect(info.state.subjects).toEqual({ "roll.a": 1, "roll.b": 1 })
    expect(decoder.decode((await jsm.streams.getMessage("ROLL", { last_by_subj: "roll.a" }))?.data)).toBe("3")
    expect((await jsm.streams.getMessage("ROLL", { last_by_subj: "roll.a" }))?.seq).toBe(last.seq)
  })

  it("fails at once when no stream takes the subject", async () => {
    const publisher = new JetStreamPublisher(nc)
    await expect(publisher.publish("nostream.here", encoder.encode("x"))).rejects.toBeInstanceOf(
      NoRespondersError,
    )
  })

  it("times out when nothing acknowledges, and ignores the late answer", async () => {
    const publisher = new JetStreamPublisher(nc, 100)
    // A plain subscriber takes the message (so no "no responders") but never answers.
    const silent = nc.subscribe("silent.subject")
    const started = performance.now()
    await expect(publisher.publish("silent.subject", encoder.encode("x"))).rejects.toBeInstanceOf(
      TimeoutError,
    )
    expect(performance.now() - started).toBeGreaterThanOrEqual(100)
    expect(publisher.pending).toBe(0)
    // Later publishes on the same publisher are unaffected.
    expect((await publisher.publish("pub.after-timeout", encoder.encode("y"))).seq).toBeGreaterThan(0)
    silent.unsubscribe()
  })

  it("fails what is waiting when closed, and refuses later publishes", async () => {
    const publisher = new JetStreamPublisher(nc)
    const silent = nc.subscribe("silent.close")
    const waiting = publisher.publish("silent.close", encoder.encode("x"))
    publisher.close()
    await expect(waiting).rejects.toBeInstanceOf(ClosedConnectionError)
    await expect(publisher.publish("pub.closed", encoder.encode("x"))).rejects.toBeInstanceOf(
      ClosedConnectionError,
    )
    silent.unsubscribe()
  })

  it("fails what is waiting when its connection closes", async () => {
    const own = await connect({ servers: server.url })
    const publisher = new JetStreamPublisher(own)
    own.subscribe("silent.connection")
    const waiting = publisher.publish("silent.connection", encoder.encode("x"))
    await own.close()
    await expect(waiting).rejects.toBeInstanceOf(ClosedConnectionError)
  })

  it("stores a publish once across a server restart, retried until acked", async () => {
    const restarting = await startNatsServer({ kind: "process" })
    const own = await connect({ servers: restarting.url, reconnectTimeWait: 100, maxReconnectAttempts: -1 })
    try {
      const ownJsm = await jetstreamManager(own)
      await ownJsm.streams.add({ name: "RESTART", subjects: ["restart.>"] })
      const publisher = new JetStreamPublisher(own, 500)
      const before = await publisher.publish("restart.one", encoder.encode("before"))
      await restarting.restart()
      // Sent while the client reconnects and JetStream recovers: a try may be lost (a timeout) or
      // find JetStream not listening yet; the same message id makes each retry safe.
      let ack: PubAck | undefined
      for (let attempt = 0; ack === undefined; attempt++) {
        try {
          ack = await publisher.publish("restart.one", encoder.encode("after"), {
            msgId: "after-restart",
            lastSubjectSequence: before.seq,
          })
        } catch (error) {
          if (!isTransient(error) || attempt >= 40) throw error
          await new Promise((resolve) => setTimeout(resolve, 100))
        }
      }
      expect(ack.seq).toBe(before.seq + 1)
      expect((await ownJsm.streams.info("RESTART")).state.messages).toBe(2)
      expect(publisher.pending).toBe(0)
    } finally {
      await own.close()
      await restarting.stop()
    }
  })
})
