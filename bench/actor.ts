/**
 * bench:actor — commands through the actor host beside raw JetStream publish-with-ack, measured
 * in the same run on the same server, and replay speed (pure fold and from JetStream).
 *
 *   pnpm bench:actor [--quick]
 */

import { JetStreamPublisher, type PublishExpectations } from "@capture/jetstream"
import {
  DEFAULT_COLLECTION,
  EVENT_SCHEMA_VERSION,
  newCommandId,
  newEventId,
  newSessionId,
  type SessionCommand,
  type SessionEvent,
  type SessionId,
  type VideoId,
} from "@capture/protocol"
import {
  foldEvent,
  foldEvents,
  initialState,
  type SessionRuntime,
  type SessionState,
  startSessionRuntime,
  transitionWithXState,
} from "@capture/session-actor"
import { startNatsServer } from "@capture/testkit"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Result } from "effect"
import { type Figure, measure, printTable, writeResults } from "./lib/stats.js"

const quick = process.argv.includes("--quick")
const SEQUENTIAL = quick ? 500 : 3_000
const SESSIONS = quick ? 200 : 1_000
const PIPELINED = quick ? 4_000 : 20_000
const FOLD_EVENTS = quick ? 200_000 : 1_000_000
const ROUNDS = quick ? 1 : 3

/** The round with the median rate. */
const median = (figures: ReadonlyArray<Figure>): Figure => {
  const sorted = [...figures].sort((a, b) => a.perSecond - b.perSecond)
  const middle = sorted[Math.floor(sorted.length / 2)]
  if (middle === undefined) throw new Error("no rounds")
  return middle
}

const command = <T extends SessionCommand["type"]>(
  type: T,
  session_id: SessionId,
  payload: object,
): SessionCommand => ({ type, command_id: newCommandId(), session_id, ...payload }) as SessionCommand

const execute = async (runtime: SessionRuntime, c: SessionCommand) => {
  const outcome = await runtime.host.execute(c)
  if (Result.isFailure(outcome)) throw new Error(`${c.type}: ${outcome.failure.message}`)
  if (outcome.success.event === null) throw new Error(`${c.type} stored nothing`)
}

/** A session in `exported` where RequestExport / FailExport of display:2 alternate forever, one event each. */
const busySession = async (runtime: SessionRuntime): Promise<(i: number) => SessionCommand> => {
  const id = newSessionId()
  const setup = [
    command("CreateSession", id, { collection_id: DEFAULT_COLLECTION, end_user_id: "bench" }),
    command("StartSession", id, { channels: [{ channel_id: "display:1" }, { channel_id: "display:2" }] }),
    command("ReportMediaReceived", id, { channel_id: "display:1" }),
    command("StopSession", id, {}),
    command("FinishStopping", id, {}),
    command("CompleteExport", id, {
      video_channel_id: "display:1",
      video_id: "m-1",
      stream_url: "s",
      player_url: "p",
    }),
  ]
  for (const c of setup) await execute(runtime, c)
  return (i) =>
    i % 2 === 0
      ? command("RequestExport", id, { video_channel_id: "display:2" })
      : command("FailExport", id, {
          video_channel_id: "display:2",
          error: { code: "bench", message: "bench" },
        })
}

/** A generated history of `count` events for one session (for the pure fold). */
const generatedHistory = (count: number): ReadonlyArray<SessionEvent> => {
  const id = newSessionId()
  const base = { session_id: id, time: new Date().toISOString(), schema_version: EVENT_SCHEMA_VERSION }
  const head: Array<
    Omit<SessionEvent, "id" | "sequence" | "session_id" | "time" | "schema_version" | "command_id">
  > = [
    {
      type: "SessionCreated",
      data: { collection_id: DEFAULT_COLLECTION, end_user_id: "u", account_id: "a", metadata: {} },
    },
    {
      type: "SessionStarting",
      data: {
        channels: [
          { channel_id: "display:1", name: "d1", type: "video", store: true, is_primary: true },
          { channel_id: "display:2", name: "d2", type: "video", store: true, is_primary: false },
        ],
        primary_video_channel_id: "display:1",
        start_deadline: base.time,
      },
    },
    { type: "SessionActivated", data: { rtstreams: [] } },
    { type: "SessionStopping", data: { reason: "requested", stop_deadline: base.time } },
    { type: "SessionStopped", data: { reason: "requested" } },
    {
      type: "ExportCompleted",
      data: { video_channel_id: "display:1", video_id: "m-1" as VideoId, stream_url: "s", player_url: "p" },
    },
  ] as never
  const events: Array<SessionEvent> = []
  for (let i = 0; i < count; i++) {
    const body =
      head[i] ??
      (i % 2 === 0
        ? { type: "ExportRequested", data: { video_channel_id: "display:2" } }
        : {
            type: "ExportFailed",
            data: { video_channel_id: "display:2", error: { code: "b", message: "b" } },
          })
    events.push({
      ...base,
      ...body,
      id: newEventId(),
      sequence: i + 1,
      command_id: newCommandId(),
    } as SessionEvent)
  }
  return events
}

const foldFigure = (
  name: string,
  events: ReadonlyArray<SessionEvent>,
  step: (s: SessionState, e: SessionEvent) => SessionState,
) => {
  const started = performance.now()
  let state = initialState
  for (const event of events) state = step(state, event)
  const seconds = (performance.now() - started) / 1000
  if (state.context.sequence !== events.length) throw new Error("fold did not reach the end")
  return { name, operations: events.length, seconds, perSecond: events.length / seconds, p50Ms: 0, p99Ms: 0 }
}

const main = async () => {
  const server = await startNatsServer({ kind: "process" })
  // One connection for baseline and host alike, set up as `capture serve` sets up its own.
  const nc = await connect({ servers: server.url, noAsyncTraces: true })
  try {
    const runtime = await startSessionRuntime(nc, { topology: { prefix: "bench" } })
    const jsm = await jetstreamManager(nc)
    await jsm.streams.add({ name: "RAW", subjects: ["raw.>"] })
    const js = jetstream(nc)
    const payload = new TextEncoder().encode(JSON.stringify(generatedHistory(8)[7]))

    // Warm up connections, JIT and stream files.
    await measure("warm-up", 500, 50, (i) => js.publish(`raw.warm.${i % 10}`, payload))

    // Raw and host alternate over several rounds and each reports its median round: the server's
    // own pace drifts (file flushes, GC), and interleaving exposes both shapes to the same drift.
    const next = await busySession(runtime)
    const sessions = await Promise.all(Array.from({ length: SESSIONS }, () => busySession(runtime)))
    const perSession = Array.from({ length: SESSIONS }, () => 0)
    let turn = 0
    // The event store's own publish path (one shared ack subscription), without the host around it.
    const publisher = new JetStreamPublisher(nc)
    let guardedId = 0
    /** Publishes carrying the host's guarantees (Msg-Id + expected subject sequence), a subject per session. */
    const guardedPublishes = (
      prefix: string,
      publish: (
        subject: string,
        expect: Required<Pick<PublishExpectations, "msgId" | "lastSubjectSequence">>,
      ) => Promise<{ readonly seq: number }>,
    ) => {
      const lastOnSubject = Array.from({ length: SESSIONS }, () => 0)
      return async (i: number) => {
        const s = i % SESSIONS
        const ack = await publish(`${prefix}.${s}`, {
          msgId: `bench-${guardedId++}`,
          lastSubjectSequence: lastOnSubject[s] ?? 0,
        })
        lastOnSubject[s] = ack.seq
      }
    }
    const guardedViaJs = guardedPublishes("raw.guarded", (subject, expect) =>
      js.publish(subject, payload, {
        msgID: expect.msgId,
        expect: { lastSubjectSequence: expect.lastSubjectSequence },
      }),
    )
    const guardedViaPublisher = guardedPublishes("raw.lean", (subject, expect) =>
      publisher.publish(subject, payload, expect),
    )
    const rounds = {
      rawGuarded: [] as Array<Figure>,
      rawGuardedPublisher: [] as Array<Figure>,
      rawSequential: [] as Array<Figure>,
      hostSequential: [] as Array<Figure>,
      rawPipelined: [] as Array<Figure>,
      hostParallel: [] as Array<Figure>,
    }
    for (let round = 0; round < ROUNDS; round++) {
      rounds.rawSequential.push(
        await measure("raw publish-with-ack, sequential", SEQUENTIAL, 1, () =>
          js.publish("raw.one", payload),
        ),
      )
      rounds.hostSequential.push(
        await measure("host, one busy session", SEQUENTIAL, 1, () => execute(runtime, next(turn++))),
      )
      rounds.rawPipelined.push(
        await measure(`raw publish-with-ack, ${SESSIONS} in flight`, PIPELINED, SESSIONS, (i) =>
          js.publish(`raw.many.${i % SESSIONS}`, payload),
        ),
      )
      rounds.rawGuarded.push(
        await measure(
          `raw + Msg-Id + expected sequence, ${SESSIONS} in flight`,
          PIPELINED,
          SESSIONS,
          guardedViaJs,
        ),
      )
      rounds.rawGuardedPublisher.push(
        await measure(
          "raw + the same guarantees via JetStreamPublisher",
          PIPELINED,
          SESSIONS,
          guardedViaPublisher,
        ),
      )
      rounds.hostParallel.push(
        await measure(`host, ${SESSIONS} sessions in parallel`, PIPELINED, SESSIONS, (i) => {
          const s = i % SESSIONS
          const nextCommand = sessions[s]
          if (nextCommand === undefined) throw new Error("no session")
          const k = perSession[s] ?? 0
          perSession[s] = k + 1
          return execute(runtime, nextCommand(k))
        }),
      )
    }
    const rawSequential = median(rounds.rawSequential)
    const hostSequential = median(rounds.hostSequential)
    const rawPipelined = median(rounds.rawPipelined)
    const hostParallel = median(rounds.hostParallel)
    const rawGuarded = median(rounds.rawGuarded)
    const rawGuardedPublisher = median(rounds.rawGuardedPublisher)
    publisher.close()

    const history = generatedHistory(FOLD_EVENTS)
    const compiledFold = foldFigure("pure fold (compiled table)", history, foldEvent)
    const xstateFold = foldFigure(
      "fold via xstate transition",
      history.slice(0, FOLD_EVENTS / 10),
      (s, e) => transitionWithXState(s, e)[0],
    )
    let replayed = 0
    const replayStarted = performance.now()
    let state = initialState
    const replayStates = new Map<string, SessionState>()
    for await (const stored of runtime.events.readAll()) {
      state = foldEvents([stored.event], replayStates.get(stored.event.session_id) ?? initialState)
      replayStates.set(stored.event.session_id, state)
      replayed++
    }
    const replaySeconds = (performance.now() - replayStarted) / 1000
    const jetstreamReplay: Figure = {
      name: "replay from JetStream (decode + fold)",
      operations: replayed,
      seconds: replaySeconds,
      perSecond: replayed / replaySeconds,
      p50Ms: 0,
      p99Ms: 0,
    }

    printTable("Commands through the actor host (ratio: host / raw in the same shape; target >= 0.50x)", [
      { figure: rawSequential },
      { figure: hostSequential, baseline: rawSequential },
      { figure: rawPipelined },
      { figure: hostParallel, baseline: rawPipelined },
    ])
    printTable(
      `The same ${SESSIONS}-session shape against raw publishes carrying the host's guarantees (ratio: host / each)`,
      [
        { figure: rawGuarded, baseline: rawPipelined },
        { figure: rawGuardedPublisher, baseline: rawPipelined },
        {
          figure: { ...hostParallel, name: `host, ${SESSIONS} sessions (vs js.publish + guarantees)` },
          baseline: rawGuarded,
        },
        {
          figure: { ...hostParallel, name: `host, ${SESSIONS} sessions (vs JetStreamPublisher + same)` },
          baseline: rawGuardedPublisher,
        },
      ],
    )
    printTable("Replay (ratio: against xstate's interpreter; target for the pure fold > 200000 events/s)", [
      { figure: xstateFold },
      { figure: compiledFold, baseline: xstateFold },
      { figure: jetstreamReplay, baseline: xstateFold },
    ])
    const file = writeResults("actor", {
      at: new Date().toISOString(),
      node: process.version,
      nats: server.kind,
      quick,
      rounds: ROUNDS,
      commands: {
        rawSequential,
        hostSequential,
        rawPipelined,
        hostParallel,
        rawGuarded,
        rawGuardedPublisher,
      },
      allRounds: rounds,
      ratios: {
        sequential: hostSequential.perSecond / rawSequential.perSecond,
        parallel: hostParallel.perSecond / rawPipelined.perSecond,
        parallelVsGuarded: hostParallel.perSecond / rawGuarded.perSecond,
        parallelVsGuardedPublisher: hostParallel.perSecond / rawGuardedPublisher.perSecond,
      },
      replay: { compiledFold, xstateFold, jetstreamReplay },
    })
    console.log(`\nresults: ${file}`)
    await runtime.stop()
  } finally {
    await nc.close()
    await server.stop()
  }
}

await main()
