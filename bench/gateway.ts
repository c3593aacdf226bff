/**
 * bench:gateway — sessions through create → start → stop over HTTP at a fixed concurrency, each
 * command's HTTP round trip, and the time from a command's answer to its WebSocket event, beside
 * the actor host driven directly (`host.execute`, as bench:actor does) on the same NATS server at
 * the same concurrency, measured in the same run.
 *
 * The server is `capture serve` as a child process (apps/cli/dist/main.js) against a nats-server
 * child process; the client is node:http with a keep-alive Agent and `ws`. The actor host
 * baseline runs in this process on its own stream prefix.
 *
 *   pnpm bench:gateway [--sessions 2000] [--concurrency 32] [--rounds 3] [--cpu-prof DIR] [--quick]
 *
 * `--cpu-prof DIR` writes the server's V8 CPU profile (`node --cpu-prof`) into DIR when it stops.
 */
import { parseArgs } from "node:util"
import {
  type CaptureSessionMessage,
  DEFAULT_COLLECTION,
  newCommandId,
  newSessionId,
  type SessionCommand,
  type SessionEvent,
  type SessionId,
  START_SESSION_ROUTE,
  stopSessionPath,
} from "@capture/protocol"
import { type SessionRuntime, startSessionRuntime } from "@capture/session-actor"
import { startNatsServer } from "@capture/testkit"
import { DeliverPolicy, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Result } from "effect"
import { startCaptureServer } from "./lib/captureServer.js"
import { openCollectionSocket } from "./lib/collectionSocket.js"
import { type EventDelaySamples, EventDelays } from "./lib/eventDelays.js"
import { positiveInteger } from "./lib/flags.js"
import { accepted, type JsonClient, makeJsonClient, stringField } from "./lib/jsonClient.js"
import { type LatencyFigure, latencyFigure, printLatencyTable } from "./lib/latency.js"
import { descendants, totalCpuMs } from "./lib/processCpu.js"
import { waitForQuietChildren } from "./lib/quiet.js"
import { type Figure, measure, printTable, writeResults } from "./lib/stats.js"

const API_KEY = "sk-bench-gateway-key"

const { values: flags } = parseArgs({
  options: {
    sessions: { type: "string" },
    concurrency: { type: "string" },
    rounds: { type: "string" },
    "cpu-prof": { type: "string" },
    quick: { type: "boolean", default: false },
  },
})
const quick = flags.quick
const SESSIONS = positiveInteger("sessions", flags.sessions, quick ? 300 : 2_000)
const CONCURRENCY = positiveInteger("concurrency", flags.concurrency, 32)
const ROUNDS = positiveInteger("rounds", flags.rounds, quick ? 1 : 3)
const WARM_UP = Math.min(SESSIONS, 300)
/** How long events may trail the last answer before they count as missing. */
const EVENT_GRACE_MS = 15_000
/** Sessions of the one-at-a-time WebSocket shape (event delay without a backlog). */
const ALONE = Math.min(SESSIONS, 100)

const COMMANDS = ["create", "start", "stop"] as const
type CommandName = (typeof COMMANDS)[number]
type Timings = Record<CommandName, Array<number>>

/** Share of one core each process used during a timed window (1 = one core busy throughout). */
interface CpuShare {
  readonly client: number
  readonly server: number
  readonly nats: number
}

/** One shape's figures in one round. */
interface Round {
  readonly sessions: Figure
  readonly commands: Record<CommandName, LatencyFigure>
  /** Every command's latency, whichever it was. */
  readonly anyCommand: LatencyFigure
  readonly events: (LatencyFigure & Omit<EventDelaySamples, "delays">) | undefined
  readonly cpu: CpuShare
  /** The server's projector over the round (gateway rounds only). */
  readonly projector?: ProjectorFigure | undefined
}

/** Events the round stored, and how fast the server's projector made them views. */
interface ProjectorFigure {
  readonly events: number
  readonly writtenPerSecond: number
  readonly projectedPerSecond: number
  /** From the round's last answer until the projector had acked every event. */
  readonly caughtUpMs: number
}

const SERVER_EVENT_STREAM = "CAPTURE_EVENTS"
const SERVER_PROJECTOR = "capture-projector"

/** Waits until the server's projector has acked everything stored; ms waited. */
const projectorCaughtUp = async (jsm: JetStreamManager): Promise<number> => {
  const started = performance.now()
  for (;;) {
    const info = await jsm.consumers.info(SERVER_EVENT_STREAM, SERVER_PROJECTOR)
    if (info.num_pending === 0 && info.num_ack_pending === 0) return performance.now() - started
    if (performance.now() - started > EVENT_GRACE_MS * 4) throw new Error("the projector did not catch up")
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

const lastEventSequence = async (jsm: JetStreamManager): Promise<number> =>
  (await jsm.streams.info(SERVER_EVENT_STREAM)).state.last_seq

/** The processes whose CPU is counted; `server` undefined until it runs. */
const processes = { server: undefined as number | undefined }

/** Runs `timed` and reports the CPU share of this process, the server and nats-server meanwhile. */
const withCpu = async <A>(timed: () => Promise<A>): Promise<[A, CpuShare]> => {
  const server = processes.server === undefined ? [] : [processes.server, ...descendants(processes.server)]
  const nats = descendants(process.pid).filter((pid) => !server.includes(pid))
  const before = { client: process.cpuUsage(), server: totalCpuMs(server), nats: totalCpuMs(nats) }
  const started = performance.now()
  const result = await timed()
  const wallMs = performance.now() - started
  const client = process.cpuUsage(before.client)
  return [
    result,
    {
      client: (client.user + client.system) / 1000 / wallMs,
      server: (totalCpuMs(server) - before.server) / wallMs,
      nats: (totalCpuMs(nats) - before.nats) / wallMs,
    },
  ]
}

const emptyTimings = (): Timings => ({ create: [], start: [], stop: [] })

const commandFigures = (label: string, timings: Timings): Pick<Round, "commands" | "anyCommand"> => ({
  commands: {
    create: latencyFigure(`${label}: create`, timings.create),
    start: latencyFigure(`${label}: start`, timings.start),
    stop: latencyFigure(`${label}: stop`, timings.stop),
  },
  anyCommand: latencyFigure(`${label}, any command`, [...timings.create, ...timings.start, ...timings.stop]),
})

const eventFigure = (name: string, { delays, ...counts }: EventDelaySamples): Round["events"] => ({
  ...latencyFigure(name, delays),
  ...counts,
})

/** The round with the median session rate. */
const median = (rounds: ReadonlyArray<Round>): Round => {
  const sorted = [...rounds].sort((a, b) => a.sessions.perSecond - b.sessions.perSecond)
  const middle = sorted[Math.floor(sorted.length / 2)]
  if (middle === undefined) throw new Error("no rounds")
  return middle
}

// --- the actor host, driven directly --------------------------------------------------------

/** The three commands of one session, as the gateway builds them. */
const lifecycle = (id: SessionId): Array<[CommandName, SessionCommand]> => [
  [
    "create",
    {
      type: "CreateSession",
      command_id: newCommandId(),
      session_id: id,
      collection_id: DEFAULT_COLLECTION,
      end_user_id: "bench",
      account_id: "bench",
    },
  ],
  [
    "start",
    {
      type: "StartSession",
      command_id: newCommandId(),
      session_id: id,
      channels: [{ channel_id: "display:1" }],
    } as SessionCommand,
  ],
  ["stop", { type: "StopSession", command_id: newCommandId(), session_id: id }],
]

const hostSession = (runtime: SessionRuntime, timings: Timings, delays?: EventDelays) => async () => {
  const id = newSessionId()
  for (const [name, command] of lifecycle(id)) {
    const started = performance.now()
    const outcome = await runtime.host.execute(command)
    const answered = performance.now()
    if (Result.isFailure(outcome)) throw new Error(`${command.type}: ${outcome.failure.message}`)
    if (outcome.success.event === null) throw new Error(`${command.type} stored nothing`)
    timings[name].push(answered - started)
    delays?.answer(`${id} ${outcome.success.event.type}`, answered)
  }
}

/** Follows new events on the host's stream in this process, as the gateway's WebSocket hub does. */
const followStream = async (runtime: SessionRuntime, delays: EventDelays) => {
  const { nc, eventStream, eventSubjects } = runtime.topology
  const consumer = await jetstream(nc).consumers.get(eventStream, {
    filter_subjects: eventSubjects,
    deliver_policy: DeliverPolicy.New,
  })
  const messages = await consumer.consume()
  const done = (async () => {
    for await (const message of messages) {
      const event = message.json<SessionEvent>()
      delays.see(`${event.session_id} ${event.type}`)
    }
  })()
  return async () => {
    await messages.close()
    await done
  }
}

const hostRound = async (runtime: SessionRuntime, count: number): Promise<Round> => {
  const timings = emptyTimings()
  const [sessions, cpu] = await withCpu(() =>
    measure(`actor host direct, ${CONCURRENCY} in flight`, count, CONCURRENCY, hostSession(runtime, timings)),
  )
  return { sessions, ...commandFigures("host.execute", timings), events: undefined, cpu }
}

const hostEventsRound = async (runtime: SessionRuntime, count: number): Promise<Round> => {
  const timings = emptyTimings()
  const delays = new EventDelays()
  const unfollow = await followStream(runtime, delays)
  try {
    const [sessions, cpu] = await withCpu(() =>
      measure(
        `actor host + JetStream consumer, ${CONCURRENCY} in flight`,
        count,
        CONCURRENCY,
        hostSession(runtime, timings, delays),
      ),
    )
    const events = eventFigure(
      `execute answered → event on a consumer, ${CONCURRENCY} in flight`,
      await delays.settle(EVENT_GRACE_MS),
    )
    return { sessions, ...commandFigures("host.execute", timings), events, cpu }
  } finally {
    await unfollow()
  }
}

// --- the gateway over HTTP + WebSocket --------------------------------------------------------

/** A socket opened the way a browser would; every lifecycle event it receives goes to `onEvent`. */
const openEventSocket = async (client: JsonClient) => {
  let target: EventDelays | undefined
  const { socket, connectionId } = await openCollectionSocket(client, (data, at) => {
    const message = data as Partial<CaptureSessionMessage>
    if (message.channel === "capture_session")
      target?.see(`${message.capture_session_id} ${message.event}`, at)
  })
  return {
    connectionId,
    listen: (delays: EventDelays) => {
      target = delays
    },
    close: () => socket.close(),
  }
}

const gatewaySession = (client: JsonClient, connectionId: string, timings: Timings, delays: EventDelays) => {
  /** Sends one command; its event is named by the status the answer reports. */
  const send = async (name: CommandName, path: string, body?: unknown) => {
    const started = performance.now()
    const response = await client.send("POST", path, body)
    const answered = performance.now()
    const data = accepted(name, response)
    timings[name].push(answered - started)
    const id = stringField(data, name === "start" ? "session_id" : "id")
    delays.answer(`${id} capture_session.${stringField(data, "status")}`, answered)
    return id
  }
  return async () => {
    const id = await send("create", `/collection/${DEFAULT_COLLECTION}/capture/session`, {
      end_user_id: "bench",
      ws_connection_id: connectionId,
    })
    await send("start", START_SESSION_ROUTE, { session_id: id, channels: [{ channel_id: "display:1" }] })
    await send("stop", stopSessionPath(id))
  }
}

const gatewayRound = async (
  client: JsonClient,
  socket: Awaited<ReturnType<typeof openEventSocket>>,
  jsm: JetStreamManager,
  count: number,
  concurrency: number = CONCURRENCY,
): Promise<Round> => {
  const timings = emptyTimings()
  const delays = new EventDelays()
  socket.listen(delays)
  const firstSequence = await lastEventSequence(jsm)
  const [sessions, cpu] = await withCpu(() =>
    measure(
      `gateway over HTTP, ${concurrency} in flight`,
      count,
      concurrency,
      gatewaySession(client, socket.connectionId, timings, delays),
    ),
  )
  const caughtUpMs = await projectorCaughtUp(jsm)
  const stored = (await lastEventSequence(jsm)) - firstSequence
  const projector: ProjectorFigure = {
    events: stored,
    writtenPerSecond: stored / sessions.seconds,
    projectedPerSecond: stored / (sessions.seconds + caughtUpMs / 1000),
    caughtUpMs,
  }
  const events = eventFigure(
    `HTTP answer → WebSocket event, ${concurrency} in flight`,
    await delays.settle(EVENT_GRACE_MS),
  )
  return { sessions, ...commandFigures("HTTP", timings), events, cpu, projector }
}

// --- the run ------------------------------------------------------------------------------------

const main = async () => {
  const runStarted = performance.now()
  const nats = await startNatsServer({ kind: "process" })
  const server = await startCaptureServer({
    natsUrl: nats.url,
    apiKey: API_KEY,
    nodeArgs: flags["cpu-prof"] === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${flags["cpu-prof"]}`],
  }).catch(async (error) => {
    await nats.stop()
    throw error
  })
  // Connected as `capture serve` connects its own.
  const nc = await connect({ servers: nats.url, noAsyncTraces: true })
  processes.server = server.pid
  const client = makeJsonClient(server.url, { "x-access-token": API_KEY }, { maxSockets: CONCURRENCY })
  try {
    // Its own prefix: the server's projector and WebSocket hub never see the baseline's events.
    const runtime = await startSessionRuntime(nc, { topology: { prefix: "bench" } })
    const jsm = await jetstreamManager(nc)
    const socket = await openEventSocket(client)
    console.log(
      `server: capture serve child process (pid ${server.pid}) at ${server.url}, NATS: ${nats.kind} at ${nats.url}`,
    )
    console.log(
      `client: node:http keep-alive (${CONCURRENCY} sockets) + ws, ${SESSIONS} sessions × ${ROUNDS} rounds at concurrency ${CONCURRENCY}`,
    )

    // Warm up JIT, sockets and stream files on both sides.
    await hostRound(runtime, WARM_UP)
    await gatewayRound(client, socket, jsm, WARM_UP)
    await hostEventsRound(runtime, WARM_UP)

    // The shapes alternate over several rounds and each reports its median round (see bench:actor).
    // Before each, the servers are let go quiet: the projector trails the gateway's commands.
    const rounds = { host: [] as Array<Round>, gateway: [] as Array<Round>, hostEvents: [] as Array<Round> }
    const quietWaits: Array<number> = []
    const settle = async () => {
      const wait = await waitForQuietChildren()
      quietWaits.push(Math.round(wait.waitedMs))
      if (!wait.quiet)
        console.log(`(servers still busy after ${wait.waitedMs.toFixed(0)} ms; measuring anyway)`)
    }
    for (let round = 0; round < ROUNDS; round++) {
      await settle()
      rounds.host.push(await hostRound(runtime, SESSIONS))
      await settle()
      rounds.gateway.push(await gatewayRound(client, socket, jsm, SESSIONS))
      await settle()
      rounds.hostEvents.push(await hostEventsRound(runtime, SESSIONS))
    }
    // Event delay without a backlog: one session at a time.
    await settle()
    const alone = await gatewayRound(client, socket, jsm, ALONE, 1)
    const host = median(rounds.host)
    const gateway = median(rounds.gateway)
    const hostEvents = median(rounds.hostEvents)

    printTable(
      `Sessions (create → start → stop; p50/p99 per session) at concurrency ${CONCURRENCY} (ratio: against the actor host direct)`,
      [
        { figure: host.sessions },
        { figure: gateway.sessions, baseline: host.sessions },
        { figure: hostEvents.sessions, baseline: host.sessions },
      ],
    )
    printLatencyTable(
      `Each command at concurrency ${CONCURRENCY}: HTTP round trip against host.execute (ratio of p50s, p99s)`,
      COMMANDS.map((name) => ({ figure: gateway.commands[name], baseline: host.commands[name] })),
    )
    const wsEvents = gateway.events
    const consumerEvents = hostEvents.events
    const aloneEvents = alone.events
    if (wsEvents !== undefined && consumerEvents !== undefined && aloneEvents !== undefined) {
      printLatencyTable(
        "Command answered → its event arrives (ratio: against host.execute's own latency, direct)",
        [
          { figure: host.anyCommand },
          { figure: consumerEvents, baseline: host.anyCommand },
          { figure: wsEvents, baseline: host.anyCommand },
          { figure: aloneEvents },
        ],
      )
      console.log(
        `events missing: websocket ${wsEvents.missing} (1 in flight: ${aloneEvents.missing}), consumer ${consumerEvents.missing}; ` +
          `seen before the answer: websocket ${wsEvents.early}, consumer ${consumerEvents.early}`,
      )
      // When events arrive slower than commands are answered the delay is a backlog: it grows
      // with --sessions, and the rates say so.
      console.log(
        `events answered → seen per second: websocket ${wsEvents.answeredPerSecond.toFixed(0)} → ${wsEvents.seenPerSecond.toFixed(0)}, ` +
          `consumer ${consumerEvents.answeredPerSecond.toFixed(0)} → ${consumerEvents.seenPerSecond.toFixed(0)}`,
      )
    }
    const share = (cpu: CpuShare) =>
      `client ${(cpu.client * 100).toFixed(0)}%, server ${(cpu.server * 100).toFixed(0)}%, nats-server ${(cpu.nats * 100).toFixed(0)}%`
    console.log("\nCPU during the timed window (100% = one core; the machine has 2, shared with other work):")
    console.log(`  actor host direct:      ${share(host.cpu)}`)
    console.log(`  gateway over HTTP:      ${share(gateway.cpu)}`)
    console.log(`  host + event consumer:  ${share(hostEvents.cpu)}`)
    const ratio = gateway.sessions.perSecond / host.sessions.perSecond
    console.log(
      `\ngateway/actor: ${ratio.toFixed(2)}x (${gateway.sessions.perSecond.toFixed(0)} vs ${host.sessions.perSecond.toFixed(0)} sessions/s, ` +
        `${(gateway.sessions.perSecond * 3).toFixed(0)} vs ${(host.sessions.perSecond * 3).toFixed(0)} commands/s)`,
    )
    const projector = gateway.projector
    if (projector !== undefined) {
      // The projector keeps up when it makes views as fast as the gateway stores events (≥ 1x).
      console.log(
        `projector: ${projector.projectedPerSecond.toFixed(0)} events/s made views against ${projector.writtenPerSecond.toFixed(0)} stored ` +
          `(${(projector.projectedPerSecond / projector.writtenPerSecond).toFixed(2)}x; ${projector.events} events, ` +
          `caught up ${projector.caughtUpMs.toFixed(0)} ms after the last answer)`,
      )
    }
    const file = writeResults("gateway", {
      at: new Date().toISOString(),
      node: process.version,
      nats: nats.kind,
      server: "capture serve child process",
      client: "node:http keep-alive Agent + ws",
      quick,
      sessions: SESSIONS,
      concurrency: CONCURRENCY,
      rounds: ROUNDS,
      median: { host, gateway, hostEvents },
      oneInFlight: alone,
      ratios: {
        sessions: ratio,
        commandP50: Object.fromEntries(
          COMMANDS.map((name) => [name, gateway.commands[name].p50Ms / host.commands[name].p50Ms]),
        ),
        eventP50: wsEvents === undefined ? null : wsEvents.p50Ms / host.anyCommand.p50Ms,
      },
      allRounds: rounds,
      quietWaitsMs: quietWaits,
      seconds: (performance.now() - runStarted) / 1000,
    })
    console.log(`results: ${file}`)
    socket.close()
    await runtime.stop()
  } finally {
    client.close()
    await server.stop()
    await nc.close()
    await nats.stop()
  }
}

await main()
