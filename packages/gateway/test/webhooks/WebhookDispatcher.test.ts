import {
  newSessionId,
  newWebhookSecret,
  type SessionCommand,
  type SessionId,
  verifyWebhook,
  type WebhookDelivery,
  WebhookEnvelope,
  type WebhookSecret,
} from "@capture/protocol"
import { type SessionRuntime, startSessionRuntime } from "@capture/session-actor"
import { getFreePort, type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Effect, Result, Schema } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { defaultCallbackUrlPolicy, parseAllowList } from "../../src/webhooks/CallbackUrlPolicy.js"
import { DeliveryLog } from "../../src/webhooks/DeliveryLog.js"
import { deliveryKey, openWebhookBucket, webhookBucketNames } from "../../src/webhooks/WebhookBuckets.js"
import { WebhookDispatcher, type WebhookDispatcherOptions } from "../../src/webhooks/WebhookDispatcher.js"
import {
  completeExport,
  create,
  exportOf,
  finish,
  media,
  start,
  stop,
  wholeLife,
  wholeLifeEvents,
} from "./commands.js"
import { waitFor } from "./poll.js"
import { type Received, Receiver } from "./receiver.js"

let server: NatsServerHandle
const connections: Array<NatsConnection> = []
const runtimes: Array<SessionRuntime> = []
const dispatchers: Array<WebhookDispatcher> = []
const receivers: Array<Receiver> = []
let deployments = 0

const secret = newWebhookSecret()
const isEnvelope = Schema.is(WebhookEnvelope)

beforeAll(async () => {
  server = await startNatsServer()
})
afterAll(async () => {
  const bounded = (task: Promise<unknown>) =>
    Promise.race([task.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 2_000))])
  for (const dispatcher of dispatchers) await bounded(dispatcher.stop())
  for (const runtime of runtimes) await bounded(runtime.stop())
  for (const nc of connections) await bounded(nc.close())
  for (const receiver of receivers) await receiver.close()
  await server?.stop()
})

const newConnection = async () => {
  const nc = await connect({ servers: server.url })
  connections.push(nc)
  return nc
}

/** The `capture_parked_retries` gauge of a retry bucket, as `/metrics` would show it (undefined: no sample). */
const parkedGauge = async (bucket: string): Promise<number | undefined> => {
  const text = await Effect.runPromise(PrometheusMetrics.format())
  const line = text.split("\n").find((l) => l.startsWith(`capture_parked_retries{bucket="${bucket}"} `))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1))
}

/** A deployment of its own (stream, buckets, consumer under a fresh prefix), so tests do not share work. */
const newDeployment = async () => {
  const prefix = `wh${++deployments}`
  const runtime = await startSessionRuntime(await newConnection(), { topology: { prefix } })
  runtimes.push(runtime)
  return { runtime, log: await DeliveryLog.open(runtime.topology) }
}

const testOptions: WebhookDispatcherOptions = {
  secretsFor: async () => [secret],
  schedule: [100, 200, 400, 800, 1_600],
  jitter: 0,
  requestTimeoutMs: 3_000,
  ackWaitMs: 1_000,
  blockedDelayMs: { min: 20, max: 500 },
  policy: Result.getOrThrow(parseAllowList("127.0.0.1")),
  ...(process.env.DEBUG_WEBHOOKS === undefined ? {} : { log: (line: string) => console.log(line) }),
}

/** A dispatcher on a connection of its own: a gateway process. */
const newDispatcher = async (
  runtime: SessionRuntime,
  options: Partial<WebhookDispatcherOptions> = {},
  nc?: NatsConnection,
) => {
  const dispatcher = await WebhookDispatcher.start(nc ?? (await newConnection()), runtime, {
    ...testOptions,
    ...options,
  })
  dispatchers.push(dispatcher)
  return dispatcher
}

const newReceiver = async (...args: Parameters<typeof Receiver.start>) => {
  const receiver = await Receiver.start(...args)
  receivers.push(receiver)
  return receiver
}

const run = async (runtime: SessionRuntime, commands: ReadonlyArray<SessionCommand>) => {
  for (const command of commands) {
    const outcome = await runtime.host.execute(command)
    if (Result.isFailure(outcome)) throw new Error(`${command.type}: ${outcome.failure.message}`)
  }
}

/** Waits until every delivery of a session is done and there are `count` of them. */
const settled = (log: DeliveryLog, id: SessionId, count: number, timeoutMs = 10_000) =>
  waitFor(
    () => log.list(id),
    (deliveries) => deliveries.length === count && deliveries.every((d) => d.status !== "pending"),
    { timeoutMs },
  )

/** Events in arrival order with immediate repeats (retries of the same delivery) collapsed. */
const collapsed = (received: ReadonlyArray<Received>): ReadonlyArray<string> =>
  received
    .filter((r, i) => i === 0 || received[i - 1]?.envelope.id !== r.envelope.id)
    .map((r) => r.envelope.event)

const signatureOf = (r: Received) => ({
  id: String(r.headers["webhook-id"]),
  timestamp: String(r.headers["webhook-timestamp"]),
  signature: String(r.headers["webhook-signature"]),
})

const attemptsOf = (delivery: WebhookDelivery | undefined) =>
  delivery?.attempts.map((a) => [a.attempt, a.status_code, a.error])

describe("WebhookDispatcher", () => {
  it("delivers every lifecycle event once, in order, signed, with the domain event's id", async () => {
    const { runtime, log } = await newDeployment()
    const receiver = await newReceiver()
    await newDispatcher(runtime)
    const id = newSessionId()
    await run(runtime, wholeLife(id, receiver.url))

    const deliveries = await settled(log, id, 6)
    expect(receiver.eventsOf(id)).toEqual(wholeLifeEvents)
    const stored = []
    for await (const { event } of runtime.events.read(id)) stored.push(event)
    const announced = stored.filter((e) => e.type !== "ExportRequested")
    expect(receiver.received.map((r) => r.envelope.id)).toEqual(announced.map((e) => e.id))
    for (const r of receiver.received) {
      expect(r.headers["content-type"]).toBe("application/json")
      expect(r.headers["webhook-id"]).toBe(r.envelope.id)
      expect(verifyWebhook(secret, signatureOf(r), r.body)).toBe(true)
      expect(isEnvelope(r.envelope)).toBe(true)
      expect(r.envelope).toMatchObject({ version: "2", end_user_id: "user-1", capture_session_id: id })
    }
    expect(verifyWebhook(newWebhookSecret(), signatureOf(receiver.received[0] as Received), "{}")).toBe(false)
    expect(deliveries.map((d) => [d.sequence, d.event, d.status, d.attempts.length])).toEqual([
      [1, "capture_session.created", "delivered", 1],
      [2, "capture_session.starting", "delivered", 1],
      [3, "capture_session.active", "delivered", 1],
      [4, "capture_session.stopping", "delivered", 1],
      [5, "capture_session.stopped", "delivered", 1],
      [6, "capture_session.exported", "delivered", 1],
    ])
    expect(deliveries[0]).toMatchObject({
      event_id: announced[0]?.id,
      session_id: id,
      url: receiver.url,
      next_attempt_at: null,
      attempts: [{ attempt: 1, status_code: 204, error: null, latency_ms: expect.any(Number) }],
    })
  })

  it("starts a new dispatcher after the history it finds: past events are not announced again", async () => {
    const { runtime, log } = await newDeployment()
    const receiver = await newReceiver()
    // Written before any dispatcher existed (a deployment upgraded to webhooks, say).
    const past = newSessionId()
    await run(runtime, wholeLife(past, receiver.url))
    await newDispatcher(runtime)
    const id = newSessionId()
    await run(runtime, wholeLife(id, receiver.url))
    await settled(log, id, 6)
    expect(receiver.eventsOf(id)).toEqual(wholeLifeEvents)
    // The consumer goes in stream order: had it started at the beginning, these would have come first.
    expect(receiver.eventsOf(past)).toEqual([])
    expect(await log.list(past)).toEqual([])
  })

  it("retries a receiver answering 500 until it succeeds, recording every attempt", async () => {
    const { runtime, log } = await newDeployment()
    let failures = 2
    const receiver = await newReceiver(() => (failures-- > 0 ? 500 : 200))
    await newDispatcher(runtime)
    const id = newSessionId()
    await run(runtime, [create(id, receiver.url)])

    const [delivery] = await settled(log, id, 1)
    expect(delivery?.status).toBe("delivered")
    expect(attemptsOf(delivery)).toEqual([
      [1, 500, "unexpected_status"],
      [2, 500, "unexpected_status"],
      [3, 200, null],
    ])
    expect(delivery?.next_attempt_at).toBeNull()
    const times = delivery?.attempts.map((a) => Date.parse(a.at)) ?? []
    // The schedule's first two delays (100 ms, 200 ms) separate the attempts.
    expect((times[1] ?? 0) - (times[0] ?? 0)).toBeGreaterThanOrEqual(90)
    expect((times[2] ?? 0) - (times[1] ?? 0)).toBeGreaterThanOrEqual(190)
    expect(new Set(receiver.received.map((r) => r.headers["webhook-id"])).size).toBe(1)
  })

  it("retries a receiver that is down until it comes up", async () => {
    const { runtime, log } = await newDeployment()
    const port = await getFreePort()
    await newDispatcher(runtime)
    const id = newSessionId()
    await run(runtime, [create(id, `http://127.0.0.1:${port}/hooks`)])

    const [pending] = await waitFor(
      () => log.list(id),
      (deliveries) => (deliveries[0]?.attempts.length ?? 0) >= 1,
    )
    expect(pending?.status).toBe("pending")
    expect(pending?.attempts[0]).toMatchObject({ status_code: null, error: "connection_error: ECONNREFUSED" })
    expect(pending?.next_attempt_at).not.toBeNull()
    const receiver = await newReceiver(() => 200, port)

    const [delivery] = await settled(log, id, 1)
    expect(delivery?.status).toBe("delivered")
    expect(delivery?.attempts.at(-1)).toMatchObject({ status_code: 200, error: null })
    expect(delivery?.attempts.slice(0, -1).every((a) => a.status_code === null)).toBe(true)
    expect(receiver.eventsOf(id)).toEqual(["capture_session.created"])
  })

  it("counts a receiver that does not answer in time as a failed attempt", async () => {
    const { runtime, log } = await newDeployment()
    let slow = true
    const receiver = await newReceiver(async () => {
      if (slow) {
        slow = false
        await new Promise((resolve) => setTimeout(resolve, 1_000))
      }
      return 200
    })
    await newDispatcher(runtime, { requestTimeoutMs: 200 })
    const id = newSessionId()
    await run(runtime, [create(id, receiver.url)])

    const [delivery] = await settled(log, id, 1)
    expect(attemptsOf(delivery)).toEqual([
      [1, null, "timeout"],
      [2, 200, null],
    ])
    expect(delivery?.attempts[0]?.latency_ms).toBeGreaterThanOrEqual(190)
  })

  it("marks a delivery failed after the last attempt and goes on with the session's next events", async () => {
    const { runtime, log } = await newDeployment()
    const receiver = await newReceiver((r) => (r.envelope.event === "capture_session.created" ? 500 : 204))
    await newDispatcher(runtime, { schedule: [50, 50] })
    const id = newSessionId()
    await run(runtime, [create(id, receiver.url), start(id)])

    const [created, starting] = await settled(log, id, 2)
    expect(created?.status).toBe("failed")
    expect(created?.next_attempt_at).toBeNull()
    expect(attemptsOf(created)).toEqual([
      [1, 500, "unexpected_status"],
      [2, 500, "unexpected_status"],
      [3, 500, "unexpected_status"],
    ])
    expect(starting?.status).toBe("delivered")
    expect(receiver.eventsOf(id)).toEqual([
      "capture_session.created",
      "capture_session.created",
      "capture_session.created",
      "capture_session.starting",
    ])
  })

  it("records a blocked address at delivery time as a failed attempt", async () => {
    const { runtime, log } = await newDeployment()
    const receiver = await newReceiver()
    await newDispatcher(runtime, { schedule: [], policy: defaultCallbackUrlPolicy })
    const id = newSessionId()
    await run(runtime, [create(id, receiver.url)])

    const [delivery] = await settled(log, id, 1)
    expect(delivery?.status).toBe("failed")
    expect(attemptsOf(delivery)).toEqual([[1, null, "blocked_address"]])
    expect(receiver.received).toEqual([])
  })

  it("signs with every active secret during a rotation", async () => {
    const { runtime, log } = await newDeployment()
    const receiver = await newReceiver()
    const [old, current] = [newWebhookSecret(), newWebhookSecret()]
    const asked: Array<string> = []
    await newDispatcher(runtime, {
      secretsFor: async (account) => {
        asked.push(account)
        return [old, current]
      },
    })
    const id = newSessionId()
    await run(runtime, [create(id, receiver.url)])
    await settled(log, id, 1)

    expect(asked).toEqual(["acct-1"])
    const [received] = receiver.received
    if (received === undefined) throw new Error("nothing received")
    const signatures = signatureOf(received).signature.split(" ")
    expect(signatures).toHaveLength(2)
    expect(signatures.every((s) => s.startsWith("v1,"))).toBe(true)
    const verifies = (key: WebhookSecret, signature: string) =>
      verifyWebhook(key, { ...signatureOf(received), signature }, received.body)
    expect(verifies(old, signatures[0] ?? "")).toBe(true)
    expect(verifies(current, signatures[1] ?? "")).toBe(true)
    expect(verifies(current, signatures[0] ?? "")).toBe(false)
  })

  it("keeps each session's order with two dispatchers sharing the consumer", async () => {
    const { runtime, log } = await newDeployment()
    const firstTry = new Set<string>()
    const receiver = await newReceiver(async (r) => {
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 20))
      // The first try of every `active` fails, so retries interleave with the other sessions' work.
      if (r.envelope.event === "capture_session.active" && !firstTry.has(r.envelope.id)) {
        firstTry.add(r.envelope.id)
        return 503
      }
      return 200
    })
    const [a, b] = [await newDispatcher(runtime), await newDispatcher(runtime)]
    const ids = Array.from({ length: 8 }, () => newSessionId())
    await Promise.all(ids.map((id) => run(runtime, wholeLife(id, receiver.url))))

    for (const id of ids) await settled(log, id, 6, 15_000)
    for (const id of ids) {
      const received = receiver.received.filter((r) => r.envelope.capture_session_id === id)
      expect(collapsed(received)).toEqual(wholeLifeEvents)
    }
    // Both processes did part of the work (an even split in practice).
    expect(a.completed).toBeGreaterThan(0)
    expect(b.completed).toBeGreaterThan(0)
    expect(a.completed + b.completed).toBeGreaterThanOrEqual(ids.length * 6)
  })

  it("delivers everything through another instance when one crashes mid-delivery", async () => {
    const { runtime, log } = await newDeployment()
    let release: (() => void) | undefined
    const hung = new Promise<void>((resolve) => {
      release = resolve
    })
    const receiver = await newReceiver(async (r) => {
      if (r.envelope.event === "capture_session.starting" && release !== undefined) {
        await hung
        return 200
      }
      return 200
    })
    const crashing = await newConnection()
    await newDispatcher(runtime, {}, crashing)
    const id = newSessionId()
    await run(runtime, wholeLife(id, receiver.url))
    await waitFor(
      async () => receiver.eventsOf(id),
      (events) => events.includes("capture_session.starting"),
    )
    // The process dies with the POST in flight: nothing acked, no attempt recorded.
    await crashing.close()
    await newDispatcher(runtime)
    const beforeRelease = receiver.received.length
    release?.()
    release = undefined

    const deliveries = await settled(log, id, 6, 15_000)
    expect(deliveries.every((d) => d.status === "delivered")).toBe(true)
    const received = receiver.received.filter((r) => r.envelope.capture_session_id === id)
    const firstSeen = received.map((r) => r.envelope.event).filter((e, i, all) => all.indexOf(e) === i)
    expect(firstSeen).toEqual(wholeLifeEvents)
    expect(collapsed(received)).toEqual(wholeLifeEvents)
    // The hung POST counts once at the receiver; the survivor sent `starting` again (at-least-once).
    expect(receiver.eventsOf(id).filter((e) => e === "capture_session.starting").length).toBe(2)
    expect(beforeRelease).toBeGreaterThanOrEqual(2)
  })

  it("parks a failed attempt outside the consumer: many dead endpoints never delay a live tenant's webhooks", async () => {
    const { runtime, log } = await newDeployment()
    const dead = `http://127.0.0.1:${await getFreePort()}/hooks`
    const receiver = await newReceiver()
    // Few slots, many dead sessions: were retries held on the consumer, these would fill it for a minute.
    const dispatcher = await newDispatcher(runtime, { maxAckPending: 4, concurrency: 4, schedule: [60_000] })
    const deadIds = Array.from({ length: 16 }, () => newSessionId())
    await Promise.all(
      deadIds.map((id) => run(runtime, [create(id, dead, "acct-dead"), start(id), media(id)])),
    )
    await waitFor(
      () => Promise.all(deadIds.map((id) => log.list(id))),
      (all) => all.every((deliveries) => deliveries[0]?.attempts.length === 1),
      { timeoutMs: 15_000 },
    )
    const live = newSessionId()
    const sent = Date.now()
    await run(runtime, wholeLife(live, receiver.url))
    await settled(log, live, 6, 10_000)
    expect(receiver.eventsOf(live)).toEqual(wholeLifeEvents)
    // Promptly: not after a dead session's retry (a minute away).
    expect(Date.now() - sent).toBeLessThan(10_000)
    // Every dead session waits in the schedule, its later event noted behind its head; the consumer holds nothing.
    const jsm = await jetstreamManager(await newConnection())
    await waitFor(
      () => jsm.consumers.info(runtime.topology.eventStream, dispatcher.durableName),
      (info) => info.num_ack_pending === 0 && info.num_pending === 0,
    )
    expect(dispatcher.parkedLanes).toBe(deadIds.length)
    expect(await parkedGauge(webhookBucketNames(runtime.topology.options.prefix).retries)).toBe(
      deadIds.length,
    )
    for (const id of deadIds) {
      const deliveries = await log.list(id)
      expect(deliveries.map((d) => [d.sequence, d.status, d.attempts.length])).toEqual([[1, "pending", 1]])
    }
  })

  it("delivers a parked lane's later events behind its head, in order, from whichever gateway runs the retry", async () => {
    const { runtime, log } = await newDeployment()
    let refusing = true
    const receiver = await newReceiver(() => (refusing ? 503 : 204))
    const first = await newDispatcher(runtime, { schedule: [1_500, 200] })
    const id = newSessionId()
    await run(runtime, [create(id, receiver.url), start(id), media(id)])
    await waitFor(
      () => log.list(id),
      (deliveries) => deliveries[0]?.attempts.length === 1,
    )
    const retryBucket = webhookBucketNames(runtime.topology.options.prefix).retries
    await waitFor(
      () => parkedGauge(retryBucket),
      (parked) => parked === 1,
    )
    // The gateway that parked it goes away; another one runs the retry and what waits behind it.
    await first.stop()
    const second = await newDispatcher(runtime, { schedule: [1_500, 200] })
    refusing = false
    await settled(log, id, 3, 15_000)
    expect(second.completed).toBe(3)
    // The lane flows again: the session's next events go out from the consumer.
    await waitFor(
      async () => second.parkedLanes,
      (parked) => parked === 0,
    )
    // Its record is gone from the schedule, and the gauge says so.
    await waitFor(
      () => parkedGauge(retryBucket),
      (parked) => parked === 0,
    )
    await run(runtime, [stop(id), finish(id), exportOf(id), completeExport(id)])
    const deliveries = await settled(log, id, 6)
    expect(deliveries.map((d) => [d.event, d.status, d.attempts.length])).toEqual([
      ["capture_session.created", "delivered", 2],
      ["capture_session.starting", "delivered", 1],
      ["capture_session.active", "delivered", 1],
      ["capture_session.stopping", "delivered", 1],
      ["capture_session.stopped", "delivered", 1],
      ["capture_session.exported", "delivered", 1],
    ])
    expect(receiver.eventsOf(id)).toEqual(["capture_session.created", ...wholeLifeEvents])
  })

  it("takes a parked lane over when the gateway running its retry dies mid-POST", async () => {
    const { runtime, log } = await newDeployment()
    let release: (() => void) | undefined
    const hung = new Promise<void>((resolve) => {
      release = resolve
    })
    let createdTries = 0
    const receiver = await newReceiver(async (r) => {
      if (r.envelope.event !== "capture_session.created") return 204
      createdTries++
      if (createdTries === 1) return 503 // parks the lane
      if (createdTries === 2) await hung // the retry's POST never ends on the dying gateway
      return 204
    })
    const options = { schedule: [300, 300], retryLeaseMs: 1_500 }
    const dying = await newConnection()
    await newDispatcher(runtime, options, dying)
    const id = newSessionId()
    await run(runtime, [create(id, receiver.url), start(id), media(id)])
    await waitFor(
      async () => createdTries,
      (tries) => tries === 2,
    )
    // The gateway running the retry dies with the POST in flight: no attempt recorded, its claim held.
    await dying.close()
    const survivor = await newDispatcher(runtime, options)
    const deliveries = await settled(log, id, 3, 15_000)
    release?.()
    expect(deliveries.map((d) => [d.event, d.status])).toEqual([
      ["capture_session.created", "delivered"],
      ["capture_session.starting", "delivered"],
      ["capture_session.active", "delivered"],
    ])
    // The hung POST and the survivor's both reached the receiver (at-least-once), then the rest in order.
    expect(collapsed(receiver.received.filter((r) => r.envelope.capture_session_id === id))).toEqual([
      "capture_session.created",
      "capture_session.starting",
      "capture_session.active",
    ])
    expect(createdTries).toBe(3)
    expect(survivor.completed).toBe(3)
  })

  it("releases the lane of a session whose subject is purged while a delivery waits, and goes on with the others", async () => {
    const { runtime, log } = await newDeployment()
    const dead = `http://127.0.0.1:${await getFreePort()}/hooks`
    const receiver = await newReceiver()
    const lines: Array<string> = []
    const dispatcher = await newDispatcher(runtime, {
      schedule: [1_000, 1_000, 1_000],
      log: (l) => lines.push(l),
    })
    const purged = newSessionId()
    await run(runtime, [create(purged, dead), start(purged)])
    await waitFor(
      () => log.list(purged),
      (deliveries) => deliveries[0]?.attempts.length === 1,
    )
    const nc = await newConnection()
    const jsm = await jetstreamManager(nc)
    await jsm.streams.purge(runtime.topology.eventStream, { filter: runtime.topology.eventSubject(purged) })
    // Its retry comes due, finds nothing left to deliver, and lets the lane go.
    await waitFor(
      async () => dispatcher.parkedLanes,
      (parked) => parked === 0,
      { timeoutMs: 10_000 },
    )
    const attempts = (await log.list(purged))[0]?.attempts.length
    const later = newSessionId()
    await run(runtime, wholeLife(later, receiver.url))
    await settled(log, later, 6)
    expect(receiver.eventsOf(later)).toEqual(wholeLifeEvents)
    const retries = await openWebhookBucket(nc, runtime.topology.options, "retries")
    expect(await retries.get(purged)).toMatchObject({ operation: "DEL" })
    const lanes = await openWebhookBucket(nc, runtime.topology.options, "lanes")
    expect(JSON.parse((await lanes.get(purged))?.string() ?? "{}")).not.toHaveProperty("parked")
    // Nothing more is tried for it.
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    expect((await log.list(purged))[0]?.attempts.length).toBe(attempts)
  })

  it("lets lanes and delivery records expire after the retention period, and restarts an expired lane", async () => {
    const { runtime, log } = await newDeployment()
    const receiver = await newReceiver()
    const nc = await newConnection()
    await newDispatcher(runtime, { retentionMs: 2_000 })
    const id = newSessionId()
    await run(runtime, [create(id, receiver.url), start(id), media(id)])
    await settled(log, id, 3)
    const names = webhookBucketNames(runtime.topology.options.prefix)
    const jsm = await jetstreamManager(nc)
    for (const name of [names.lanes, names.deliveries, names.retries]) {
      expect((await jsm.streams.info(`KV_${name}`)).config.max_age).toBe(2_000 * 1_000_000)
    }
    const lanes = await openWebhookBucket(nc, runtime.topology.options, "lanes")
    await waitFor(
      async () => [await lanes.get(id), await log.list(id)] as const,
      ([lane, deliveries]) => lane === null && deliveries.length === 0,
      { timeoutMs: 15_000 },
    )
    // The session's events after its lane expired still go out, with the routing its history gives.
    await run(runtime, [stop(id), finish(id), exportOf(id), completeExport(id)])
    const deliveries = await settled(log, id, 3)
    expect(deliveries.map((d) => [d.event, d.status, d.url])).toEqual([
      ["capture_session.stopping", "delivered", receiver.url],
      ["capture_session.stopped", "delivered", receiver.url],
      ["capture_session.exported", "delivered", receiver.url],
    ])
    expect(receiver.eventsOf(id)).toEqual(wholeLifeEvents)
  })

  it("parks what does not decode (an event, a lane, a delivery record) and keeps delivering the others", async () => {
    const { runtime, log } = await newDeployment()
    const receiver = await newReceiver()
    const nc = await newConnection()
    const [lanes, deliveries] = await Promise.all([
      openWebhookBucket(nc, runtime.topology.options, "lanes"),
      openWebhookBucket(nc, runtime.topology.options, "deliveries"),
    ])
    const [badLane, badRecord, badEvent, healthy] = [
      newSessionId(),
      newSessionId(),
      newSessionId(),
      newSessionId(),
    ]
    const corruptLane = JSON.stringify({ next_sequence: "soon", routing: null })
    const corruptRecord = "{not json"
    await lanes.put(badLane, corruptLane)
    await deliveries.put(deliveryKey(badRecord, 1), corruptRecord)
    const lines: Array<string> = []
    const dispatcher = await newDispatcher(runtime, { log: (line) => lines.push(line) })
    // After the dispatcher started: it begins after the history it finds.
    await jetstream(nc).publish(runtime.topology.eventSubject(badEvent), "not an event")
    await run(runtime, [create(badLane, receiver.url), start(badLane)])
    await run(runtime, [create(badRecord, receiver.url), start(badRecord)])
    await run(runtime, wholeLife(healthy, receiver.url))

    await settled(log, healthy, 6)
    expect(receiver.eventsOf(healthy)).toEqual(wholeLifeEvents)
    // Nothing goes round forever: every message of the broken sessions was terminated.
    const jsm = await jetstreamManager(nc)
    await waitFor(
      () => jsm.consumers.info(runtime.topology.eventStream, dispatcher.durableName),
      (info) => info.num_ack_pending === 0 && info.num_pending === 0,
    )
    expect(receiver.eventsOf(badLane)).toEqual([])
    expect(receiver.eventsOf(badRecord)).toEqual([])
    const parked = (id: string) =>
      lines
        .filter((line) => line.includes(id) && line.includes(" parked: "))
        .map((line) => line.split(" parked: ")[1])
    expect(parked(badLane)).toEqual([
      expect.stringMatching(/^its lane is unreadable \(next_sequence: /),
      expect.stringMatching(/^its lane is unreadable \(next_sequence: /),
    ])
    expect([...parked(badRecord)].sort()).toEqual([
      expect.stringMatching(/^its delivery record is unreadable/),
      "waits behind event 1, whose delivery record is unreadable",
    ])
    expect(parked(badEvent)).toEqual([expect.stringMatching(/^not a known event/)])
    // The unreadable records are left as they were, for someone to look at.
    expect((await lanes.get(badLane))?.string()).toBe(corruptLane)
    expect((await deliveries.get(deliveryKey(badRecord, 1)))?.string()).toBe(corruptRecord)
    expect(await log.list(badRecord)).toEqual([])
  })
})
