/**
 * bench:gateway — sessions through create → start → stop over HTTP at a fixed concurrency, each
 * command's HTTP round trip, and the time from a command's answer to its WebSocket event, beside
 * the actor host driven directly (`host.execute`, as bench:actor does) on the same NATS server at
 * the same concurrency, measured in the same run.
 *
 * The server is `capture serve` as child processes (apps/cli/dist/main.js) against a nats-server
 * child process, in two shapes, each on a nats-server of its own: `all`, one process running
 * everything, and `split`, the deployed shape with the gateway on its own: `--role api` (the HTTP
 * API and WebSocket) beside `--role workers` (projector, timer wheel, reactor, webhook delivery)
 * and `--role muxer`. The client is node:http with a keep-alive Agent and `ws`. The actor host
 * baseline runs in this process on its own stream prefix. Beside the rates it prints the CPU
 * each process used per session, over the round and until the workers caught up.
 *
 *   pnpm bench:gateway [--sessions 2000] [--concurrency 32] [--rounds 3] [--shapes all,split] [--cpu-prof DIR] [--quick]
 *
 * `--cpu-prof DIR` writes every server process's V8 CPU profile (`node --cpu-prof`) into DIR when it stops.
 */
import { loadavg } from "node:os"
import { parseArgs } from "node:util"
import { coalesceWrites } from "@capture/jetstream"
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
import { type CaptureServer, startCaptureServer } from "./lib/captureServer.js"
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
    shapes: { type: "string", default: "all,split" },
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

const SHAPES = ["all", "split"] as const
type Shape = (typeof SHAPES)[number]
const shapes: ReadonlyArray<Shape> = flags.shapes.split(",").map((name) => {
  const shape = SHAPES.find((known) => known === name.trim())
  if (shape === undefined) throw new Error(`--shapes: ${name} is not one of ${SHAPES.join(", ")}`)
  return shape
})

const COMMANDS = ["create", "start", "stop"] as const
type CommandName = (typeof COMMANDS)[number]
type Timings = Record<CommandName, Array<number>>

/** Per process (client, each server role, nats-server): share of one core used during the timed window (1 = one core busy throughout). */
type CpuShare = Readonly<Record<string, number>>
/** Per process: CPU ms per session over the round and until the server's workers caught up. */
type CpuPerSession = Readonly<Record<string, number>>

/** One shape's figures in one round. */
interface Round {
  readonly sessions: Figure
  readonly commands: Record<CommandName, LatencyFigure>
  /** Every command's latency, whichever it was. */
  readonly anyCommand: LatencyFigure
  readonly events: (LatencyFigure & Omit<EventDelaySamples, "delays">) | undefined
  readonly cpu: CpuShare
  readonly cpuPerSession: CpuPerSession
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

/** Processes whose CPU is counted, by name (`client` is this process: the actor host in host rounds). */
type Processes = Readonly<Record<string, ReadonlyArray<number>>>

const clientCpuMs = () => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}

/** CPU ms of each named process group (and this process as `client`) so far. */
const cpuNow = (processes: Processes): Record<string, number> => ({
  client: clientCpuMs(),
  ...Object.fromEntries(Object.entries(processes).map(([name, pids]) => [name, totalCpuMs(pids)])),
})

/**
 * Runs `timed`, then `trailing` (the workers catching up), and reports each process's CPU share
 * during `timed` and its CPU ms per session over both.
 */
const withCpu = async <A, B>(
  processes: Processes,
  sessions: number,
  timed: () => Promise<A>,
  trailing: () => Promise<B>,
): Promise<[A, B, CpuShare, CpuPerSession]> => {
  const before = cpuNow(processes)
  const started = performance.now()
  const result = await timed()
  const wallMs = performance.now() - started
  const afterTimed = cpuNow(processes)
  const trailed = await trailing()
  const afterAll = cpuNow(processes)
  const each = (after: Record<string, number>, per: number) =>
    Object.fromEntries(
      Object.keys(before).map((name) => [name, ((after[name] ?? 0) - (before[name] ?? 0)) / per]),
    )
  return [result, trailed, each(afterTimed, wallMs), each(afterAll, sessions)]
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

const hostRound = async (runtime: SessionRuntime, nats: Processes, count: number): Promise<Round> => {
  const timings = emptyTimings()
  const [sessions, , cpu, cpuPerSession] = await withCpu(
    nats,
    count,
    () =>
      measure(
        `actor host direct, ${CONCURRENCY} in flight`,
        count,
        CONCURRENCY,
        hostSession(runtime, timings),
      ),
    async () => undefined,
  )
  return { sessions, ...commandFigures("host.execute", timings), events: undefined, cpu, cpuPerSession }
}

const hostEventsRound = async (runtime: SessionRuntime, nats: Processes, count: number): Promise<Round> => {
  const timings = emptyTimings()
  const delays = new EventDelays()
  const unfollow = await followStream(runtime, delays)
  try {
    const [sessions, settled, cpu, cpuPerSession] = await withCpu(
      nats,
      count,
      () =>
        measure(
          `actor host + JetStream consumer, ${CONCURRENCY} in flight`,
          count,
          CONCURRENCY,
          hostSession(runtime, timings, delays),
        ),
      () => delays.settle(EVENT_GRACE_MS),
    )
    const events = eventFigure(`execute answered → event on a consumer, ${CONCURRENCY} in flight`, settled)
    return { sessions, ...commandFigures("host.execute", timings), events, cpu, cpuPerSession }
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

/** One shape of the server under test: its processes, its NATS and the client's connections to it. */
interface Target {
  readonly shape: Shape
  readonly client: JsonClient
  readonly socket: Awaited<ReturnType<typeof openEventSocket>>
  readonly jsm: JetStreamManager
  /** Its server processes and its nats-server, by name. */
  readonly processes: Processes
  readonly stop: () => Promise<void>
}

const gatewayRound = async (
  target: Target,
  count: number,
  concurrency: number = CONCURRENCY,
): Promise<Round> => {
  const { client, socket, jsm } = target
  const timings = emptyTimings()
  const delays = new EventDelays()
  socket.listen(delays)
  const firstSequence = await lastEventSequence(jsm)
  const [sessions, [caughtUpMs, settled], cpu, cpuPerSession] = await withCpu(
    target.processes,
    count,
    () =>
      measure(
        `gateway over HTTP (${target.shape}), ${concurrency} in flight`,
        count,
        concurrency,
        gatewaySession(client, socket.connectionId, timings, delays),
      ),
    // The workers' trailing work counts: until the projector caught up, events arrived and the
    // processes went quiet.
    async () => {
      const caughtUp = await projectorCaughtUp(jsm)
      const events = await delays.settle(EVENT_GRACE_MS)
      await waitForQuietChildren()
      return [caughtUp, events] as const
    },
  )
  const stored = (await lastEventSequence(jsm)) - firstSequence
  const projector: ProjectorFigure = {
    events: stored,
    writtenPerSecond: stored / sessions.seconds,
    projectedPerSecond: stored / (sessions.seconds + caughtUpMs / 1000),
    caughtUpMs,
  }
  const events = eventFigure(
    `HTTP answer → WebSocket event (${target.shape}), ${concurrency} in flight`,
    settled,
  )
  return {
    sessions,
    ...commandFigures(`HTTP (${target.shape})`, timings),
    events,
    cpu,
    cpuPerSession,
    projector,
  }
}

// --- the run ------------------------------------------------------------------------------------

/** A nats-server child process and its pid (the one process that appeared while it started). */
const startNats = async () => {
  const before = new Set(descendants(process.pid))
  const nats = await startNatsServer({ kind: "process" })
  return { nats, pids: descendants(process.pid).filter((pid) => !before.has(pid)) }
}

/** The server processes of a shape: one `capture serve`, or the api, workers and muxer roles. */
const startShape = async (shape: Shape): Promise<Target> => {
  const { nats, pids: natsPids } = await startNats()
  const cpuProfile =
    flags["cpu-prof"] === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${flags["cpu-prof"]}`]
  const roles = shape === "all" ? [["all"]] : [["api"], ["workers"], ["muxer"]]
  const servers: Array<{ readonly role: string; readonly server: CaptureServer }> = []
  const stopAll = async () => {
    for (const { server } of servers.reverse()) await server.stop()
    await nats.stop()
  }
  try {
    for (const [role = "all"] of roles) {
      const server = await startCaptureServer({
        natsUrl: nats.url,
        apiKey: API_KEY,
        args: role === "all" ? [] : ["--role", role],
        // A role without the API answers its health route only.
        ...(role === "api" || role === "all" ? {} : { readyPath: "/healthz" }),
        nodeArgs: cpuProfile,
      })
      servers.push({ role, server })
    }
    const api = servers[0]?.server
    if (api === undefined) throw new Error("no server")
    const nc = await connect({ servers: nats.url, noAsyncTraces: true })
    const client = makeJsonClient(api.url, { "x-access-token": API_KEY }, { maxSockets: CONCURRENCY })
    const socket = await openEventSocket(client)
    const processes: Processes = {
      ...Object.fromEntries(
        servers.map(({ role, server }) => [
          role === "all" ? "serve" : `serve --role ${role}`,
          [server.pid, ...descendants(server.pid)],
        ]),
      ),
      "nats-server": natsPids,
    }
    console.log(
      `${shape}: ${servers.map(({ role, server }) => `${role} (pid ${server.pid})`).join(", ")} at ${api.url}, NATS: ${nats.kind} at ${nats.url}`,
    )
    return {
      shape,
      client,
      socket,
      jsm: await jetstreamManager(nc),
      processes,
      stop: async () => {
        socket.close()
        client.close()
        await nc.close()
        await stopAll()
      },
    }
  } catch (error) {
    await stopAll()
    throw error
  }
}

const cpuLine = (cpu: CpuPerSession) =>
  Object.entries(cpu)
    .map(([name, ms]) => `${name} ${ms.toFixed(2)}`)
    .join(", ")

const main = async () => {
  const runStarted = performance.now()
  // The host's own NATS: nothing else runs on it.
  const { nats, pids: natsPids } = await startNats()
  const targets: Array<Target> = []
  // Connected as `capture serve` connects its own.
  const nc = await connect({ servers: nats.url, noAsyncTraces: true })
  coalesceWrites(nc)
  try {
    for (const shape of shapes) targets.push(await startShape(shape))
    const runtime = await startSessionRuntime(nc, { topology: { prefix: "bench" } })
    const hostNats: Processes = { "nats-server": natsPids }
    console.log(`host: this process, NATS: ${nats.kind} at ${nats.url}`)
    console.log(
      `client: node:http keep-alive (${CONCURRENCY} sockets) + ws, ${SESSIONS} sessions × ${ROUNDS} rounds at concurrency ${CONCURRENCY}`,
    )

    // Warm up JIT, sockets and stream files on both sides.
    await hostRound(runtime, hostNats, WARM_UP)
    for (const target of targets) await gatewayRound(target, WARM_UP)
    await hostEventsRound(runtime, hostNats, WARM_UP)

    // The shapes alternate over several rounds and each reports its median round (see bench:actor).
    // Before each, the servers are let go quiet: the projector trails the gateway's commands.
    const rounds = {
      host: [] as Array<Round>,
      gateway: Object.fromEntries(targets.map((target) => [target.shape, [] as Array<Round>])),
      hostEvents: [] as Array<Round>,
    }
    const quietWaits: Array<number> = []
    const settle = async () => {
      const wait = await waitForQuietChildren()
      quietWaits.push(Math.round(wait.waitedMs))
      if (!wait.quiet)
        console.log(`(servers still busy after ${wait.waitedMs.toFixed(0)} ms; measuring anyway)`)
    }
    for (let round = 0; round < ROUNDS; round++) {
      await settle()
      rounds.host.push(await hostRound(runtime, hostNats, SESSIONS))
      for (const target of targets) {
        await settle()
        rounds.gateway[target.shape]?.push(await gatewayRound(target, SESSIONS))
      }
      await settle()
      rounds.hostEvents.push(await hostEventsRound(runtime, hostNats, SESSIONS))
    }
    const host = median(rounds.host)
    const hostEvents = median(rounds.hostEvents)
    const gateways = targets.map((target) => ({ target, round: median(rounds.gateway[target.shape] ?? []) }))
    // Event delay without a backlog: one session at a time.
    const alone: Record<string, Round> = {}
    for (const target of targets) {
      await settle()
      alone[target.shape] = await gatewayRound(target, ALONE, 1)
    }

    printTable(
      `Sessions (create → start → stop; p50/p99 per session) at concurrency ${CONCURRENCY} (ratio: against the actor host direct)`,
      [
        { figure: host.sessions },
        ...gateways.map(({ round }) => ({ figure: round.sessions, baseline: host.sessions })),
        { figure: hostEvents.sessions, baseline: host.sessions },
      ],
    )
    printLatencyTable(
      `Each command at concurrency ${CONCURRENCY}: HTTP round trip against host.execute (ratio of p50s, p99s)`,
      gateways.flatMap(({ round }) =>
        COMMANDS.map((name) => ({ figure: round.commands[name], baseline: host.commands[name] })),
      ),
    )
    const consumerEvents = hostEvents.events
    if (consumerEvents !== undefined) {
      printLatencyTable(
        "Command answered → its event arrives (ratio: against host.execute's own latency, direct)",
        [
          { figure: host.anyCommand },
          { figure: consumerEvents, baseline: host.anyCommand },
          ...gateways.flatMap(({ target, round }) => {
            const one = alone[target.shape]?.events
            return [
              ...(round.events === undefined ? [] : [{ figure: round.events, baseline: host.anyCommand }]),
              ...(one === undefined ? [] : [{ figure: one }]),
            ]
          }),
        ],
      )
      for (const { target, round } of gateways) {
        const ws = round.events
        const one = alone[target.shape]?.events
        if (ws === undefined || one === undefined) continue
        // When events arrive slower than commands are answered the delay is a backlog: it grows
        // with --sessions, and the rates say so.
        console.log(
          `${target.shape}: events missing: websocket ${ws.missing} (1 in flight: ${one.missing}); seen before the answer ${ws.early}; ` +
            `answered → seen per second ${ws.answeredPerSecond.toFixed(0)} → ${ws.seenPerSecond.toFixed(0)}`,
        )
      }
      console.log(
        `consumer: events missing ${consumerEvents.missing}, seen before the answer ${consumerEvents.early}, ` +
          `answered → seen per second ${consumerEvents.answeredPerSecond.toFixed(0)} → ${consumerEvents.seenPerSecond.toFixed(0)}`,
      )
    }
    const share = (cpu: CpuShare) =>
      Object.entries(cpu)
        .map(([name, part]) => `${name} ${(part * 100).toFixed(0)}%`)
        .join(", ")
    console.log("\nCPU during the timed window (100% = one core; the machine has 2, shared with other work):")
    console.log(`  actor host direct (client = the host): ${share(host.cpu)}`)
    for (const { target, round } of gateways)
      console.log(`  gateway over HTTP, ${target.shape}: ${share(round.cpu)}`)
    console.log(`  host + event consumer: ${share(hostEvents.cpu)}`)
    console.log("\nCPU ms per session, every process, until the workers caught up:")
    console.log(`  actor host direct (client = the host): ${cpuLine(host.cpuPerSession)}`)
    for (const { target, round } of gateways)
      console.log(`  gateway over HTTP, ${target.shape}: ${cpuLine(round.cpuPerSession)}`)
    console.log()
    for (const { target, round } of gateways) {
      const ratio = round.sessions.perSecond / host.sessions.perSecond
      const worstP99 = Math.max(...COMMANDS.map((name) => round.commands[name].p99Ms))
      console.log(
        `gateway (${target.shape})/actor: ${ratio.toFixed(2)}x (${round.sessions.perSecond.toFixed(0)} vs ${host.sessions.perSecond.toFixed(0)} sessions/s, ` +
          `${(round.sessions.perSecond * 3).toFixed(0)} vs ${(host.sessions.perSecond * 3).toFixed(0)} commands/s); worst command p99 ${worstP99.toFixed(1)} ms`,
      )
      const projector = round.projector
      if (projector !== undefined) {
        // The projector keeps up when it makes views as fast as the gateway stores events (≥ 1x).
        console.log(
          `  projector: ${projector.projectedPerSecond.toFixed(0)} events/s made views against ${projector.writtenPerSecond.toFixed(0)} stored ` +
            `(${(projector.projectedPerSecond / projector.writtenPerSecond).toFixed(2)}x; ${projector.events} events, ` +
            `caught up ${projector.caughtUpMs.toFixed(0)} ms after the last answer)`,
        )
      }
    }
    const file = writeResults("gateway", {
      at: new Date().toISOString(),
      node: process.version,
      nats: nats.kind,
      server: "capture serve child processes",
      client: "node:http keep-alive Agent + ws",
      quick,
      sessions: SESSIONS,
      concurrency: CONCURRENCY,
      rounds: ROUNDS,
      loadAverage: loadavg(),
      median: {
        host,
        hostEvents,
        gateway: Object.fromEntries(gateways.map(({ target, round }) => [target.shape, round])),
      },
      oneInFlight: alone,
      ratios: Object.fromEntries(
        gateways.map(({ target, round }) => [
          target.shape,
          {
            sessions: round.sessions.perSecond / host.sessions.perSecond,
            commandP50: Object.fromEntries(
              COMMANDS.map((name) => [name, round.commands[name].p50Ms / host.commands[name].p50Ms]),
            ),
            eventP50: round.events === undefined ? null : round.events.p50Ms / host.anyCommand.p50Ms,
          },
        ]),
      ),
      allRounds: rounds,
      quietWaitsMs: quietWaits,
      seconds: (performance.now() - runStarted) / 1000,
    })
    console.log(
      `load average at the end: ${loadavg()
        .map((load) => load.toFixed(2))
        .join(", ")}`,
    )
    console.log(`results: ${file}`)
    await runtime.stop()
  } finally {
    for (const target of targets) await target.stop()
    await nc.close()
    await nats.stop()
  }
}

await main()
