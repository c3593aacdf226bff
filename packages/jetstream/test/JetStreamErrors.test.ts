import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { JetStreamApiError, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  isConsumerExists,
  isConsumerNotFound,
  isCreationRace,
  isMessageNotFound,
  isRevisionConflict,
  isStreamNameInUse,
  isStreamNotFound,
  isTransient,
  isWrongLastSequence,
  JetStreamErrorCode,
  jetStreamErrorCode,
} from "../src/index.js"

let server: NatsServerHandle
let nc: NatsConnection
let jsm: JetStreamManager

beforeAll(async () => {
  server = await startNatsServer()
  nc = await connect({ servers: server.url })
  jsm = await jetstreamManager(nc)
  await jsm.streams.add({ name: "ERRORS", subjects: ["errors.>"] })
})
afterAll(async () => {
  await nc?.close()
  await server?.stop()
})

/** What `attempt` rejects with (it must reject). */
const failure = async (attempt: () => Promise<unknown>): Promise<unknown> => {
  try {
    await attempt()
  } catch (error) {
    return error
  }
  throw new Error("expected a failure")
}

const predicates = {
  isConsumerExists,
  isConsumerNotFound,
  isCreationRace,
  isMessageNotFound,
  isRevisionConflict,
  isStreamNameInUse,
  isStreamNotFound,
  isTransient,
  isWrongLastSequence,
}
type Predicate = keyof typeof predicates

/** The predicates that accept `error`. */
const matching = (error: unknown): Predicate[] =>
  (Object.keys(predicates) as Predicate[]).filter((name) => predicates[name](error))

describe("JetStream's errors, named", () => {
  it("a guarded publish that lost to another writer is a wrong last sequence", async () => {
    const js = jetstream(nc)
    await js.publish("errors.guarded", "first", { expect: { lastSubjectSequence: 0 } })
    const error = await failure(() =>
      js.publish("errors.guarded", "again", { expect: { lastSubjectSequence: 0 } }),
    )
    expect(jetStreamErrorCode(error)).toBe(JetStreamErrorCode.StreamWrongLastSequence)
    expect(matching(error)).toEqual(["isRevisionConflict", "isWrongLastSequence"])
  })

  it("a KV create of a key that exists, and an update at a stale revision, are revision conflicts", async () => {
    const kv = await new Kvm(nc).create("errors_kv", { history: 1 })
    const revision = await kv.create("key", "1")
    await kv.update("key", "2", revision)
    for (const error of [
      await failure(() => kv.create("key", "3")),
      await failure(() => kv.update("key", "3", revision)),
    ]) {
      expect(matching(error)).toEqual(["isRevisionConflict", "isWrongLastSequence"])
    }
  })

  it("a stream whose subjects another stream holds is a creation race", async () => {
    const error = await failure(() => jsm.streams.add({ name: "OVERLAPPING", subjects: ["errors.x"] }))
    expect(jetStreamErrorCode(error)).toBe(JetStreamErrorCode.StreamSubjectsOverlap)
    expect(matching(error)).toEqual(["isCreationRace"])
  })

  it("a stream name taken with another configuration is a name in use", async () => {
    const error = await failure(() =>
      jsm.streams.add({ name: "ERRORS", subjects: ["errors.>"], max_msgs: 3 }),
    )
    expect(matching(error)).toEqual(["isStreamNameInUse"])
  })

  it("a missing stream, consumer or message is named as such", async () => {
    expect(matching(await failure(() => jsm.streams.info("NOPE")))).toEqual(["isStreamNotFound"])
    expect(matching(await failure(() => jsm.consumers.info("ERRORS", "nope")))).toEqual([
      "isConsumerNotFound",
    ])
    // nats.js turns "no message found" into null for getMessage; the API answers it as an error.
    const answer = await nc.request("$JS.API.STREAM.MSG.GET.ERRORS", JSON.stringify({ seq: 999 }))
    const error = new JetStreamApiError(
      answer.json<{ error: ConstructorParameters<typeof JetStreamApiError>[0] }>().error,
    )
    expect(matching(error)).toEqual(["isMessageNotFound"])
  })

  it("a durable consumer name that is taken exists already, whichever way the server says it", () => {
    // nats-server 2.9 updates a durable on a create with another configuration where it may;
    // 2.10+ refuses it as "consumer already exists". No server here answers all three.
    const answers = [
      [JetStreamErrorCode.ConsumerNameInUse, "consumer name already in use"],
      [JetStreamErrorCode.ConsumerExistingActive, "consumer already exists and is still active"],
      [JetStreamErrorCode.ConsumerAlreadyExists, "consumer already exists"],
    ] as const
    for (const [err_code, description] of answers) {
      expect(matching(new JetStreamApiError({ code: 400, err_code, description }))).toEqual([
        "isConsumerExists",
      ])
    }
  })

  it("no responder, a timeout and a cluster without a leader are transient; a refusal is not", async () => {
    const noResponder = await failure(() => nc.request("nobody.listens", ""))
    const silent = nc.subscribe("silent.listener")
    const timeout = await failure(() => nc.request("silent.listener", "", { timeout: 100 }))
    silent.unsubscribe()
    const leaderless = new JetStreamApiError({
      code: 503,
      err_code: JetStreamErrorCode.ClusterNotAvailable,
      description: "JetStream system temporarily unavailable",
    })
    // An API request to a JetStream nobody serves: nats.js says "jetstream is not enabled".
    const noApi = await failure(async () =>
      (await jetstreamManager(nc, { apiPrefix: "$JS.nobody.API", checkAPI: false })).streams.info("ERRORS"),
    )
    for (const error of [noResponder, timeout, leaderless, noApi])
      expect(matching(error)).toEqual(["isTransient"])
    expect(isTransient(await failure(() => jsm.streams.info("NOPE")))).toBe(false)
  })

  it("other errors match nothing", () => {
    expect(matching(new Error("wrong last sequence"))).toEqual([])
    expect(matching("subjects overlap")).toEqual([])
    expect(jetStreamErrorCode(new Error("x"))).toBeUndefined()
  })
})
