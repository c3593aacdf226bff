import {
  newCommandId,
  newSessionId,
  type SessionCommand,
  type SessionId,
  type VideoId,
} from "@capture/protocol"
import {
  applyEvent,
  type SessionRuntime,
  startSessionRuntime,
  transitionWithXState,
  UnappliableEvent,
} from "@capture/session-actor"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { jetstream } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Transition, verifyAll, verifySession } from "../src/replay/Verify.js"
import { runCli } from "./cli.js"
import { create, finish, media, rtstream, run, start, stop } from "./commands.js"

let nats: NatsServerHandle
let nc: NatsConnection
let runtime: SessionRuntime
const healthy = newSessionId()
const failed = newSessionId()
const exported = newSessionId()

const failSession = (id: SessionId): SessionCommand => ({
  type: "FailSession",
  command_id: newCommandId(),
  session_id: id,
  error: { code: "capture_failed", message: "every stored channel gave up" },
})
const completeExport = (id: SessionId): SessionCommand => ({
  type: "CompleteExport",
  command_id: newCommandId(),
  session_id: id,
  video_channel_id: "display:1",
  video_id: "m-replay1" as VideoId,
  stream_url: "http://127.0.0.1/stream.m3u8",
  player_url: "http://127.0.0.1/player",
})

beforeAll(async () => {
  nats = await startNatsServer()
  nc = await connect({ servers: nats.url })
  runtime = await startSessionRuntime(nc, { workers: false })
  await run(
    runtime,
    create(healthy),
    start(healthy),
    media(healthy),
    rtstream(healthy, "stop", 1),
    rtstream(healthy, "start", 1),
    stop(healthy),
    finish(healthy),
  )
  // Histories down the other roads: a failure while starting, and an export.
  await run(runtime, create(failed), start(failed), failSession(failed))
  await run(
    runtime,
    create(exported),
    start(exported),
    media(exported),
    stop(exported),
    finish(exported),
    completeExport(exported),
  )
})
afterAll(async () => {
  await runtime?.stop()
  await nc?.close()
  await nats?.stop()
})

const capture = (...args: ReadonlyArray<string>) => runCli([...args, "--nats", nats.url])

/** No stack trace ever reaches the operator. */
const noStack = (result: { readonly stdout: string; readonly stderr: string }): void => {
  expect(result.stdout).not.toContain("    at ")
  expect(result.stderr).not.toContain("    at ")
}

describe("capture replay", () => {
  it("prints every event with the state after it", async () => {
    const result = await capture("replay", healthy)
    expect(result.code).toBe(0)
    const lines = result.stdout.split("\n")
    expect(lines.filter((line) => /^#\d+ /.test(line)).map((line) => line.split(/\s+/)[2])).toEqual([
      "SessionCreated",
      "SessionStarting",
      "SessionActivated",
      "RtstreamStopped",
      "RtstreamStarted",
      "SessionStopping",
      "SessionStopped",
    ])
    expect(lines.filter((line) => line.startsWith("    state")).map((line) => line.split(/\s+/)[2])).toEqual([
      "created",
      "starting",
      "active",
      "active",
      "active",
      "stopping",
      "stopped",
    ])
    expect(result.stdout).toContain(`"session_id":"${healthy}"`)
    expect(result.stdout).toContain("status stopped at #7")
  })

  it("shows an rtstream's stop and start as events of its session", async () => {
    const replay = JSON.parse((await capture("replay", healthy, "--json")).stdout)
    const display = `rts-${healthy.slice(4)}-01`
    const steps = replay.events.map((e: { type: string; data: unknown; state: { context: unknown } }) => [
      e.type,
      e.data,
      (e.state.context as { stopped_rtstream_ids: Array<string> }).stopped_rtstream_ids,
    ])
    expect(steps.slice(3, 5)).toEqual([
      ["RtstreamStopped", { rtstream_id: display }, [display]],
      ["RtstreamStarted", { rtstream_id: display }, []],
    ])
  })

  it("stops at --until and prints one JSON document with --json", async () => {
    const result = await capture("replay", healthy, "--until", "3", "--json")
    expect(result.code).toBe(0)
    const replay = JSON.parse(result.stdout)
    expect(replay.session_id).toBe(healthy)
    expect(
      replay.events.map((e: { sequence: number; type: string; state: { status: string } }) => [
        e.sequence,
        e.type,
        e.state.status,
      ]),
    ).toEqual([
      [1, "SessionCreated", "created"],
      [2, "SessionStarting", "starting"],
      [3, "SessionActivated", "active"],
    ])
    expect(replay.events[0].data).toMatchObject({ collection_id: "default", end_user_id: "user-1" })
    expect(replay.final).toMatchObject({ status: "active", sequence: 3 })
    expect(replay.final.context.rtstreams).toHaveLength(2)
    expect(replay.error).toBeNull()
  })

  it("says so, with exit code 2, for an unknown session", async () => {
    const result = await capture("replay", newSessionId())
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/not found/)
    noStack(result)
  })
})

describe("verifying against XState's interpreter", () => {
  it("finds the two agree on every stored history, state and effects", async () => {
    const report = await verifyAll(runtime.events)
    expect(report).toMatchObject({ verified: 3, failed: 0, events: 7 + 3 + 6 })
  })

  it("reports the first event where the compiled transition differs, and which fields differ", async () => {
    const tampered: Transition = (state, event) => {
      const [next, effects] = applyEvent(state, event)
      return event.type === "SessionStopping"
        ? [{ ...next, context: { ...next.context, stop_reason: "tampered" } }, effects]
        : [next, effects]
    }
    const outcome = await verifySession(runtime.events, exported, { compiled: tampered })
    expect(outcome.events).toBe(3)
    expect(outcome.failure).toMatchObject({
      sequence: 4,
      event_type: "SessionStopping",
      differences: [{ field: "context.stop_reason", compiled: "tampered", xstate: "requested" }],
    })
    expect(outcome.failure?.reason).toContain("after SessionStopping in state active")

    const report = await verifyAll(runtime.events, () => {}, { compiled: tampered })
    expect(report.failures.map((f) => [f.session_id, f.sequence])).toEqual(
      expect.arrayContaining([
        [healthy, 6],
        [exported, 4],
      ]),
    )
    expect(report.failed).toBe(2)
  })

  it("catches effects that differ, and an event only one side accepts", async () => {
    // Forgets the start timer: the session would never fail for want of media.
    const noStartTimer: Transition = (state, event) => {
      const [next, effects] = applyEvent(state, event)
      return event.type === "SessionStarting" ? [next, []] : [next, effects]
    }
    const effects = await verifySession(runtime.events, failed, { compiled: noStartTimer })
    expect(effects.failure).toMatchObject({
      sequence: 2,
      event_type: "SessionStarting",
      differences: [
        {
          field: "effects",
          compiled: [],
          xstate: expect.arrayContaining([
            expect.objectContaining({ type: "scheduleTimer", timer: "start" }),
          ]),
        },
      ],
    })

    const refusesExports: Transition = (state, event) => {
      if (event.type === "ExportCompleted") throw new UnappliableEvent(event, state.value)
      return transitionWithXState(state, event)
    }
    const refused = await verifySession(runtime.events, exported, { reference: refusesExports })
    expect(refused.failure).toMatchObject({
      sequence: 6,
      event_type: "ExportCompleted",
      differences: [{ field: "accepted", compiled: true, xstate: false }],
    })
  })
})

describe("capture replay --verify", () => {
  it("passes when every history replays", async () => {
    const result = await capture("replay", "--verify")
    expect(result.code).toBe(0)
    expect(result.stdout).toContain("verified 3 sessions, 0 failed (16 events)")
  })

  it("reports each history the code cannot reproduce, with session and sequence, and fails", async () => {
    const js = jetstream(nc)
    // A newer writer's event type on a healthy history, and a message that is not JSON at all.
    const teleported = await js.publish(
      `capture.events.${healthy}`,
      JSON.stringify({ type: "SessionTeleported", session_id: healthy, sequence: 8, data: {} }),
    )
    const garbled = newSessionId()
    const notJson = await js.publish(`capture.events.${garbled}`, "{not json")

    const result = await capture("replay", "--verify")
    expect(result.code).not.toBe(0)
    expect(result.stdout).toMatch(new RegExp(`FAIL ${healthy} stream message ${teleported.seq}\\b`))
    expect(result.stdout).toMatch(new RegExp(`FAIL ${garbled} stream message ${notJson.seq}\\b`))
    expect(result.stdout).toContain("verified 4 sessions, 2 failed")
    noStack(result)

    const json = await capture("replay", "--verify", "--json")
    expect(json.code).not.toBe(0)
    expect(JSON.parse(json.stdout)).toMatchObject({ verified: 4, failed: 2 })

    // Replaying the damaged session shows its good prefix, then where and why it stops.
    const one = await capture("replay", healthy)
    expect(one.code).toBe(1)
    expect(one.stdout).toContain("status stopped at #7")
    expect(one.stderr).toContain(`stream message ${teleported.seq}`)
    noStack(one)
  })
})
