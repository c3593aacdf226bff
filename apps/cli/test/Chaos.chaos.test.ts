/**
 * `pnpm test:chaos`: sessions recorded and exported through real processes while they are killed.
 *
 * A 3-node JetStream cluster (nats-server child processes on 127.0.0.1), two gateways and two
 * muxers (`capture serve --role … --replicas 3`), and recorders (`capture record --synthetic`,
 * segments from ffmpeg) each behind its own TCP proxy in front of the gateways. For
 * `CAPTURE_CHAOS_SECONDS` (default 210) sessions start, record and stop while, at moments drawn
 * from a seeded generator (`CAPTURE_CHAOS_SEED`, printed), a gateway, a muxer, a recorder or a
 * NATS node is SIGKILLed and started again, and one recorder's network is cut for a while. Then
 * everything is left to settle and the invariants are checked:
 *
 * - every segment stored once: per channel indexes 0…n-1, the last one final, one record on the
 *   media stream and one object per segment, nothing left in a spool;
 * - every event once and in order per session: sequences 1…n, no event id or command id twice;
 * - every webhook delivered at least once and in order per session (a receiver on 127.0.0.1);
 * - every session exported exactly once (one `ExportCompleted`, its video served);
 * - no read-model view behind the log once the projector has nothing pending.
 *
 * The last line printed holds the counts: kills, sessions, segments, events, webhooks, lost,
 * duplicated. Process logs stay in the run folder it names, for a failing run.
 */
import { appendFileSync, mkdirSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { MediaStore, segmentObjectName } from "@capture/media"
import { newWebhookSecret, type SessionEvent } from "@capture/protocol"
import {
  foldEvent,
  initialState,
  type SessionState,
  startSessionRuntime,
  toLifecycleEvent,
} from "@capture/session-actor"
import { getFreePorts, LOOPBACK, type NatsClusterHandle, startNatsCluster } from "@capture/testkit"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { Objm } from "@nats-io/obj"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, describe, expect, it } from "vitest"
import {
  CaptureProcess,
  type CuttableProxy,
  isReady,
  seededRandom,
  startCuttableProxy,
  waitUntilReady,
} from "./chaos.js"
import { pollUntil, sleep, startWebhookReceiver, type WebhookReceiver } from "./endToEnd.js"

const SEED = Number(process.env.CAPTURE_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31))
const CHAOS_MS = Number(process.env.CAPTURE_CHAOS_SECONDS ?? 210) * 1_000
const MIN_KILLS = 20
const API_KEY = "sk-chaos-test-key-0123456789abcdef"
const WEBHOOK_SECRET = newWebhookSecret()
const CHANNELS = ["display:1", "mic:default"]
/** Recorders running at once: each is a node process and two ffmpegs on a 2-core machine. */
const MAX_RECORDING = 2
const SETTLE_MS = 360_000
/**
 * The whole run's bound (the test's timeout): start-up, chaos, settle and checks. The settle is
 * cut short so that the checks (the roles ready again, the projector, the invariants) keep at
 * least the last two minutes; with the build `pnpm test:chaos` stays within about 15 minutes.
 */
const RUN_MS = 14 * 60_000
const CHECKS_MS = 120_000
/**
 * Above the longest outage a recorder sees here: a killed recorder's restart (a process start
 * takes up to a minute on the loaded 2-core test machine) plus a cut. A longer outage stops the
 * session for silence, and what the recorder's spool still holds is then refused: the missing
 * "late media after an auto-stop" of issue 15 (CAPTURE_CHAOS_SILENCE_TIMEOUT_MS=60000 shows it).
 */
const SILENCE_TIMEOUT_MS = Number(process.env.CAPTURE_CHAOS_SILENCE_TIMEOUT_MS ?? 300_000)

const runDir = join(tmpdir(), `capture-chaos-${SEED}-${process.pid}`)
mkdirSync(runDir, { recursive: true })
const spoolDir = join(runDir, "spool")
const say = (line: string) => console.info(`[chaos ${((Date.now() - startedAt) / 1000).toFixed(1)}s] ${line}`)
const startedAt = Date.now()

let cluster: NatsClusterHandle | undefined
let nc: NatsConnection | undefined
let receiver: WebhookReceiver | undefined
const processes: CaptureProcess[] = []
const proxies: CuttableProxy[] = []
/** Runs of serve roles that ended by themselves. */
const crashes: string[] = []
/** Set once the suite tears down: nothing is started again. */
let closing = false
let passed = false

afterAll(async () => {
  closing = true
  for (const proxy of proxies) await proxy.close()
  for (const process of processes) await process.close()
  await nc?.close()
  await cluster?.stop()
  await receiver?.close()
  // The logs are kept for a failing run only.
  if (passed) rmSync(runDir, { recursive: true, force: true })
})

/** A serve role on a fixed port, started again on the same port after a kill. */
interface Role {
  readonly name: string
  readonly kind: "gateway" | "muxer"
  readonly port: number
  readonly process: CaptureProcess
  /** Killed by the chaos and kept down until it starts it again. */
  held: boolean
  readonly start: () => void
}

/** One recorded session and its recorder. */
interface Recording {
  readonly index: number
  readonly sessionId: string
  readonly token: string
  readonly proxy: CuttableProxy
  readonly recorder: CaptureProcess
  /** When the recording should stop (the recorder's `--duration` counts from its start). */
  readonly endsAt: number
  done: boolean
  killed: boolean
  /** Its network is cut. */
  cut: boolean
  readonly exits: Array<string>
}

interface Counts {
  kills: { gateway: number; muxer: number; recorder: number; nats: number }
  cuts: number
}

describe("chaos: kills and a network cut while sessions record and export", () => {
  it("loses and duplicates nothing", { timeout: RUN_MS }, async () => {
    const rng = seededRandom(SEED)
    say(`seed ${SEED} (CAPTURE_CHAOS_SEED=${SEED} replays it), chaos ${CHAOS_MS / 1000} s, logs in ${runDir}`)

    cluster = await startNatsCluster({ logDir: runDir })
    const natsCluster = cluster
    nc = await connect({ servers: [...natsCluster.urls], maxReconnectAttempts: -1 })
    const natsConnection = nc
    receiver = await startWebhookReceiver(WEBHOOK_SECRET)
    const hooks = receiver

    const ports = await getFreePorts(4)
    const [gatewayPort0 = 0, gatewayPort1 = 0, muxerPort0 = 0, muxerPort1 = 0] = ports
    const gatewayPorts = [gatewayPort0, gatewayPort1]
    const env = {
      NATS_URL: natsCluster.servers,
      CAPTURE_API_KEY: API_KEY,
      CAPTURE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      CAPTURE_WEBHOOK_ALLOW_HOSTS: LOOPBACK,
      CAPTURE_WEBHOOK_SCHEDULE: "1s,2s,5s,10s,20s,30s,60s",
      CAPTURE_PUBLIC_URL: `http://${LOOPBACK}:${gatewayPort0}`,
      CAPTURE_SILENCE_TIMEOUT_MS: String(SILENCE_TIMEOUT_MS),
    }
    /**
     * A role runs under a supervisor, as under Kubernetes or systemd: a run that ends by itself
     * (a crash) is started again a second later and counted; one the chaos killed is held down
     * until the chaos starts it again.
     */
    const role = (kind: Role["kind"], i: number, port: number): Role => {
      const name = `${kind}-${i}`
      const process = new CaptureProcess(name, join(runDir, `${name}.log`), env)
      processes.push(process)
      const self: Role = {
        name,
        kind,
        port,
        process,
        held: false,
        start: () => {
          const run = process.runs
          void process
            .start([
              ...["serve", "--role", kind, "--port", String(port), "--replicas", "3"],
              ...["--shutdown-timeout", "2s"],
            ])
            .then(async ({ code, signal }) => {
              if (self.held || closing) return
              crashes.push(`${name} run ${run + 1} exited ${signal ?? code} by itself`)
              say(`${name} exited ${signal ?? code} by itself; the supervisor starts it again`)
              await sleep(1_000)
              if (!self.held && !closing && !process.running) self.start()
            })
        },
      }
      return self
    }
    const roles = [
      role("gateway", 0, gatewayPort0),
      role("gateway", 1, gatewayPort1),
      role("muxer", 0, muxerPort0),
      role("muxer", 1, muxerPort1),
    ]
    // One gateway first: it creates the streams and the account, the others find them.
    roles[0]?.start()
    await waitUntilReady(gatewayPort0, 240_000, "gateway-0")
    for (const r of roles.slice(1)) r.start()
    for (const r of roles.slice(1)) await waitUntilReady(r.port, 240_000, r.name)
    say("cluster, 2 gateways and 2 muxers ready")
    await expectEveryStreamReplicated(natsConnection)

    const liveGatewayPorts = () =>
      roles.filter((r) => r.kind === "gateway" && r.process.running).map((r) => r.port)

    /** An API call with the API key through whichever gateway answers, retried through kills. */
    const api = async (path: string, body: object): Promise<Record<string, unknown>> => {
      let last = ""
      for (let attempt = 0; attempt < 120; attempt++) {
        const port = gatewayPorts[attempt % gatewayPorts.length] ?? 0
        try {
          const response = await fetch(`http://${LOOPBACK}:${port}${path}`, {
            method: "POST",
            headers: { "x-access-token": API_KEY, "content-type": "application/json" },
            body: JSON.stringify(body),
            signal: AbortSignal.timeout(10_000),
          })
          const envelope = (await response.json()) as { data?: Record<string, unknown> }
          if (response.status === 200 && envelope.data !== undefined) return envelope.data
          last = `${response.status} ${JSON.stringify(envelope)}`
        } catch (error) {
          last = String(error)
        }
        await sleep(500)
      }
      throw new Error(`POST ${path}: ${last}`)
    }

    const counts: Counts = { kills: { gateway: 0, muxer: 0, recorder: 0, nats: 0 }, cuts: 0 }
    const recordings: Recording[] = []
    const chaosEndsAt = Date.now() + CHAOS_MS
    const pending: Array<Promise<void>> = []

    const runRecorder = (recording: Recording, durationMs: number): void => {
      const exit = recording.recorder.start([
        ...["record", "--server", recording.proxy.url, "--token", recording.token],
        ...["--session", recording.sessionId, "--synthetic", "--channels", CHANNELS.join(",")],
        ...["--duration", `${Math.max(1_000, durationMs)}ms`, "--spool", spoolDir],
      ])
      pending.push(
        exit.then(({ code, signal }) => {
          recording.exits.push(signal ?? String(code))
          if (recording.killed || closing) return
          if (code === 0) {
            recording.done = true
            return
          }
          // Not our kill: the recorder gave up (say its start found no server during a cut). Run it
          // again to upload what it left, as a user would; the invariants say whether anything was
          // lost. A session the server ended takes nothing more: running again would not help.
          const why = recording.recorder.lastLines.filter((l) => l.startsWith("capture:")).join(" ")
          const ended = why.includes("ended by the server")
          say(`recorder ${recording.index} exited ${signal ?? code} by itself (${why})`)
          if (!ended && recording.recorder.runs < 6) runRecorder(recording, recording.endsAt - Date.now())
        }),
      )
    }

    let sessionNumber = 0
    const startSession = async (): Promise<void> => {
      const index = sessionNumber++
      const endUser = `chaos-user-${index}`
      const created = await api("/collection/default/capture/session", {
        end_user_id: endUser,
        callback_url: hooks.url,
      })
      const token = (await api("/capture/session/token", { user_id: endUser })).token as string
      const proxy = await startCuttableProxy(liveGatewayPorts)
      proxies.push(proxy)
      const recorder = new CaptureProcess(`recorder-${index}`, join(runDir, `recorder-${index}.log`), {})
      processes.push(recorder)
      const durationMs = rng.int(20, 40) * 1_000
      const recording: Recording = {
        index,
        sessionId: created.id as string,
        token,
        proxy,
        recorder,
        endsAt: Date.now() + durationMs,
        done: false,
        killed: false,
        cut: false,
        exits: [],
      }
      recordings.push(recording)
      say(`session ${index} ${recording.sessionId}: recording ${durationMs / 1000} s`)
      runRecorder(recording, durationMs)
    }

    // Sessions: up to MAX_RECORDING at once, new ones until 45 s before the chaos ends.
    const sessionsLoop = (async () => {
      while (Date.now() < chaosEndsAt - 45_000) {
        const recording = recordings.filter((r) => !r.done && Date.now() < r.endsAt).length
        if (recording < MAX_RECORDING) await startSession()
        await sleep(rng.int(3, 10) * 1_000)
      }
    })()

    /** Recorders with at least 8 s left to record: a kill there leaves something to resume. */
    const killableRecorders = () =>
      recordings.filter((r) => r.recorder.running && !r.killed && !r.cut && r.endsAt - Date.now() > 8_000)

    const restartLater = (what: string, delayMs: number, restart: () => Promise<boolean>) => {
      pending.push(
        (async () => {
          await sleep(delayMs)
          try {
            say((await restart()) ? `${what} back` : `${what} killed again while starting`)
          } catch (error) {
            say(`${what}: ${String(error)}`)
          }
        })(),
      )
    }

    let natsDown = false
    let lastNatsKill = 0
    const kill = async (kind: keyof Counts["kills"]): Promise<boolean> => {
      if (kind === "gateway" || kind === "muxer") {
        const candidates = roles.filter((r) => r.kind === kind && r.process.running)
        // Never both gateways at once: an outage of every gateway longer than the silence
        // timeout (60 s; a restart takes up to a minute on a loaded machine) stops the session by
        // design, and what the recorder still holds is then refused (see docs/testing.md).
        const anotherReady = async (target: Role) => {
          for (const r of roles) {
            if (r.kind !== "gateway" || r === target || r.held || !r.process.running) continue
            if (await isReady(r.port)) return true
          }
          return false
        }
        if (candidates.length === 0) return false
        const target = rng.pick(candidates)
        if (kind === "gateway" && !(await anotherReady(target))) return false
        target.held = true
        await target.process.kill()
        say(`SIGKILL ${target.name}`)
        restartLater(target.name, rng.int(1, 6) * 1_000, async () => {
          target.held = false
          target.start()
          return waitUntilReady(target.port, 180_000, target.name, () => target.process.running)
        })
      } else if (kind === "recorder") {
        const candidates = killableRecorders()
        if (candidates.length === 0) return false
        const target = rng.pick(candidates)
        target.killed = true
        await target.recorder.kill()
        say(`SIGKILL recorder ${target.index}`)
        restartLater(`recorder ${target.index}`, rng.int(1, 5) * 1_000, async () => {
          target.killed = false
          runRecorder(target, target.endsAt - Date.now())
          return true
        })
      } else {
        if (natsDown || Date.now() - lastNatsKill < 15_000) return false
        const node = rng.int(0, 2)
        natsDown = true
        lastNatsKill = Date.now()
        await natsCluster.killNode(node)
        say(`SIGKILL nats node n${node + 1}`)
        restartLater(`nats node n${node + 1}`, rng.int(2, 10) * 1_000, async () => {
          await natsCluster.restartNode(node)
          await natsCluster.waitForJetStream()
          natsDown = false
          return true
        })
      }
      counts.kills[kind] += 1
      return true
    }

    const chaosLoop = (async () => {
      // The first kills take each kind once, in an order of the seed's choosing.
      const queue = rng.shuffle(["gateway", "muxer", "recorder", "nats"] as const)
      await sleep(15_000)
      const kinds = ["gateway", "muxer", "recorder", "nats"] as const
      while (Date.now() < chaosEndsAt) {
        const first = queue.shift() ?? rng.pick(kinds)
        // A kind with nothing to kill now (the other gateway not ready, a NATS node still down)
        // gives way to another kind, and keeps its turn in the first round.
        let killed = await kill(first)
        if (!killed) queue.unshift(first)
        for (const other of rng.shuffle(kinds.filter((k) => k !== first))) {
          if (killed) break
          killed = await kill(other)
          if (killed) queue.splice(queue.indexOf(other), queue.includes(other) ? 1 : 0)
        }
        await sleep(rng.int(3, 8) * 1_000)
      }
    })()

    const cutLoop = (async () => {
      await sleep(rng.int(20, Math.max(21, CHAOS_MS / 2_000)) * 1_000)
      for (;;) {
        const candidates = recordings.filter((r) => r.recorder.running && r.endsAt - Date.now() > 20_000)
        if (candidates.length > 0) {
          const target = rng.pick(candidates)
          const cutMs = rng.int(20, 40) * 1_000
          target.cut = true
          target.proxy.cut()
          counts.cuts += 1
          say(`network of recorder ${target.index} cut for ${cutMs / 1000} s`)
          await sleep(cutMs)
          target.proxy.restore()
          target.cut = false
          say(`network of recorder ${target.index} restored`)
          return
        }
        if (Date.now() > chaosEndsAt) return
        await sleep(2_000)
      }
    })()

    await Promise.all([sessionsLoop, chaosLoop, cutLoop])
    say("chaos over; waiting for restarts, recorders and exports")
    // Restarts may add more pending work (a recorder run again): wait until nothing is left.
    const settleBy = Math.min(Date.now() + SETTLE_MS, startedAt + RUN_MS - CHECKS_MS)
    const untilSettleDeadline = (work: Promise<unknown>) =>
      Promise.race([work, sleep(Math.max(0, settleBy - Date.now()))])
    for (let settled = 0; settled < pending.length && Date.now() < settleBy; ) {
      const batch = pending.slice(settled)
      settled = pending.length
      await untilSettleDeadline(Promise.all(batch))
    }
    for (const r of roles) if (!r.process.running) r.start()
    for (const r of roles) {
      await waitUntilReady(r.port, 180_000, r.name).catch((error: unknown) => say(String(error)))
    }

    const runtime = await startSessionRuntime(natsConnection, { topology: { replicas: 3 } })
    const media = await MediaStore.open(natsConnection, { replicas: 3 })
    try {
      await pollUntil(
        "every recorder done and every session exported",
        async () => {
          const statuses = await Promise.all(
            recordings.map(async (r) => (await runtime.host.load(r.sessionId)).state.value),
          )
          return recordings.map((r, i) => `${r.index}:${r.done ? "done" : "recording"}:${statuses[i]}`)
        },
        (states) => states.every((s) => s.endsWith(":done:exported") || s.includes(":failed")),
        { timeoutMs: Math.max(1_000, settleBy - Date.now()), intervalMs: 1_000 },
      ).catch((error: unknown) => say(String(error)))

      // Webhooks are delivered at least once, eventually: one a killed gateway held comes back
      // after the dispatcher's ack wait (30 s) and its lane's wait. Given until the settle deadline
      // (at least 30 s); what is still missing then is counted as lost below.
      await pollUntil(
        "every announced webhook delivered",
        () => undeliveredWebhooks(recordings, runtime, hooks),
        (missing) => missing === 0,
        { timeoutMs: Math.max(30_000, settleBy - Date.now()), intervalMs: 1_000 },
      ).catch((error: unknown) => say(String(error)))

      // The projector settles: nothing pending or unacknowledged on its durable.
      const jsm = await jetstreamManager(natsConnection)
      await pollUntil(
        "the projector caught up",
        async () => {
          const info = await jsm.consumers.info(runtime.topology.eventStream, "capture-projector")
          return info.num_pending + info.num_ack_pending
        },
        (left) => left === 0,
        { timeoutMs: 60_000, intervalMs: 500 },
      )

      const report = await checkInvariants({ recordings, runtime, media, nc: natsConnection, hooks })
      const kills = Object.values(counts.kills).reduce((a, b) => a + b, 0)
      for (const problem of report.problems) say(`PROBLEM ${problem}`)
      for (const crash of crashes) say(`crash (restarted by the supervisor): ${crash}`)
      say(
        `kills by kind: gateway ${counts.kills.gateway}, muxer ${counts.kills.muxer}, recorder ${counts.kills.recorder}, nats ${counts.kills.nats}; network cuts ${counts.cuts}`,
      )
      console.info(
        `chaos seed=${SEED} kills=${kills} sessions=${recordings.length} segments=${report.segments} events=${report.events} webhooks=${report.webhooks} crashes=${crashes.length} lost=${report.lost} duplicated=${report.duplicated} misordered=${report.misordered} behind=${report.behind} unexported=${report.unexported} unsettled=${report.unsettled}`,
      )
      expect(report.problems).toEqual([])
      expect(kills).toBeGreaterThanOrEqual(MIN_KILLS)
      expect(Object.values(counts.kills).every((n) => n > 0)).toBe(true)
      expect(counts.cuts).toBe(1)
      passed = true
    } finally {
      await runtime.stop()
    }
  })
})

/** Lifecycle events the sessions' logs announce that the receiver has not had yet. */
const undeliveredWebhooks = async (
  recordings: ReadonlyArray<Recording>,
  runtime: Awaited<ReturnType<typeof startSessionRuntime>>,
  hooks: WebhookReceiver,
): Promise<number> => {
  const received = new Set(hooks.received.map((w) => w.envelope.id))
  let missing = 0
  for (const recording of recordings) {
    let state: SessionState = initialState
    for await (const { event } of runtime.events.read(recording.sessionId)) {
      state = foldEvent(state, event)
      const lifecycle = toLifecycleEvent(event, state)
      if (lifecycle !== undefined && !received.has(lifecycle.id)) missing += 1
    }
  }
  return missing
}

/** Every stream and bucket the roles created has three replicas. */
const expectEveryStreamReplicated = async (nc: NatsConnection): Promise<void> => {
  const jsm = await jetstreamManager(nc)
  const single: string[] = []
  for await (const stream of jsm.streams.list()) {
    if (stream.config.num_replicas !== 3) single.push(`${stream.config.name} (${stream.config.num_replicas})`)
  }
  expect(single, "streams not replicated three times").toEqual([])
}

interface Report {
  readonly segments: number
  readonly events: number
  readonly webhooks: number
  readonly lost: number
  readonly duplicated: number
  readonly misordered: number
  readonly behind: number
  /** Sessions with no export by the deadline (slow or stuck muxers), not counted as lost. */
  readonly unexported: number
  /**
   * Sessions whose recorder was still running when the run's bound was reached (a machine too
   * loaded to finish): their uploads are in flight, so they are not counted as lost or duplicated.
   */
  readonly unsettled: number
  readonly problems: ReadonlyArray<string>
}

const checkInvariants = async (input: {
  readonly recordings: ReadonlyArray<Recording>
  readonly runtime: Awaited<ReturnType<typeof startSessionRuntime>>
  readonly media: MediaStore
  readonly nc: NatsConnection
  readonly hooks: WebhookReceiver
}): Promise<Report> => {
  const { recordings, runtime, media, nc, hooks } = input
  const problems: string[] = []
  let segments = 0
  let events = 0
  let webhooks = 0
  let lost = 0
  let duplicated = 0
  let misordered = 0
  let behind = 0
  let unexported = 0
  let unsettled = 0
  const bucket = await new Objm(jetstream(nc)).open(media.topology.bucket)
  for (const recording of recordings) {
    const id = recording.sessionId
    const where = `session ${recording.index} ${id}`
    if (!recording.done) {
      unsettled += 1
      problems.push(`${where}: the recorder never finished (exits ${recording.exits.join(", ")})`)
      continue
    }
    // Listed per session, after its recorder finished: nothing of it is uploaded meanwhile.
    const objects = (await bucket.list()).filter((o) => !o.deleted)

    // Segments: once each, contiguous, the last final, nothing left in the spool.
    const records = await media.list(id)
    segments += records.length
    let onStream = 0
    for await (const _ of media.readRecords(id)) onStream++
    if (onStream !== records.length) {
      duplicated += Math.max(0, onStream - records.length)
      problems.push(`${where}: ${onStream} records on the media stream for ${records.length} segments`)
    }
    const names = objects.filter((o) => o.name.startsWith(`${id}/`)).map((o) => o.name)
    const expectedNames = new Set(records.map((r) => segmentObjectName(id, r.channel_id, r.index)))
    const extra = names.filter((n) => !expectedNames.has(n)).length + (names.length - new Set(names).size)
    const missing = [...expectedNames].filter((n) => !names.includes(n)).length
    if (extra + missing > 0) {
      duplicated += extra
      lost += missing
      problems.push(`${where}: objects ${names.length}, records ${records.length}`)
    }
    for (const channel of CHANNELS) {
      const indexes = records
        .filter((r) => r.channel_id === channel)
        .map((r) => r.index)
        .sort((a, b) => a - b)
      const top = indexes.at(-1) ?? -1
      const gaps = top + 1 - new Set(indexes).size
      if (gaps > 0 || indexes.length === 0) {
        lost += Math.max(1, gaps)
        problems.push(`${where} ${channel}: indexes ${indexes.join(",")} (${gaps} missing)`)
      }
      const finals = records.filter((r) => r.channel_id === channel && r.final).map((r) => r.index)
      if (finals.length !== 1 || finals[0] !== top) {
        lost += 1
        problems.push(`${where} ${channel}: final segments ${finals.join(",") || "none"}, last index ${top}`)
      }
    }
    const leftInSpool = spooled(join(spoolDir, id))
    if (leftInSpool > 0) {
      lost += leftInSpool
      problems.push(`${where}: ${leftInSpool} segments left in the recorder's spool`)
    }

    // Events: once each, in order.
    const stored: SessionEvent[] = []
    for await (const { event } of runtime.events.read(id)) stored.push(event)
    appendFileSync(join(runDir, "events.jsonl"), `${stored.map((e) => JSON.stringify(e)).join("\n")}\n`)
    events += stored.length
    stored.forEach((event, i) => {
      if (event.sequence !== i + 1) {
        misordered += 1
        problems.push(`${where}: event ${i + 1} has sequence ${event.sequence} (${event.type})`)
      }
    })
    const ids = stored.map((e) => e.id)
    const commandIds = stored.map((e) => e.command_id)
    const twice = ids.length - new Set(ids).size + (commandIds.length - new Set(commandIds).size)
    if (twice > 0) {
      duplicated += twice
      problems.push(`${where}: ${twice} events stored twice (${stored.map((e) => e.type).join(",")})`)
    }

    // Exported exactly once.
    let state: SessionState = initialState
    const announced: string[] = []
    for (const event of stored) {
      state = foldEvent(state, event)
      const lifecycle = toLifecycleEvent(event, state)
      if (lifecycle !== undefined) announced.push(lifecycle.id)
    }
    const completed = stored.filter((e) => e.type === "ExportCompleted")
    if (state.value !== "exported" || completed.length !== 1) {
      // Not exported by the deadline is told apart from lost: its segments are all checked above.
      if (completed.length === 0) unexported += 1
      else duplicated += completed.length - 1
      problems.push(
        `${where}: ${state.value} with ${completed.length} ExportCompleted (${stored.map((e) => e.type).join(",")})`,
      )
    }

    // Webhooks: every announced event at least once, first deliveries in the session's order.
    const received = hooks.received.filter((w) => w.envelope.capture_session_id === id)
    webhooks += received.length
    const unsigned = received.filter((w) => !w.verified).length
    if (unsigned > 0) problems.push(`${where}: ${unsigned} webhooks with a bad signature`)
    const firstSeen: string[] = []
    for (const hook of received) if (!firstSeen.includes(hook.envelope.id)) firstSeen.push(hook.envelope.id)
    const notDelivered = announced.filter((e) => !firstSeen.includes(e))
    if (notDelivered.length > 0) {
      lost += notDelivered.length
      problems.push(`${where}: ${notDelivered.length} of ${announced.length} webhooks never delivered`)
    }
    const deliveredOrder = firstSeen.filter((e) => announced.includes(e))
    const expectedOrder = announced.filter((e) => firstSeen.includes(e))
    if (deliveredOrder.join() !== expectedOrder.join()) {
      misordered += 1
      problems.push(`${where}: webhooks out of order`)
    }

    // The read model: not behind the log.
    const view = await runtime.readModel.get(id)
    const last = stored.at(-1)?.sequence ?? 0
    if (view === undefined || view.sequence !== last || view.session.status !== state.value) {
      behind += 1
      problems.push(
        `${where}: view at ${view?.sequence} (${view?.session.status}), log at ${last} (${state.value})`,
      )
    }
  }
  return { segments, events, webhooks, lost, duplicated, misordered, behind, unexported, unsettled, problems }
}

/** Segment files waiting in a session's spool folder (none when the folder is gone). */
const spooled = (sessionSpool: string): number => {
  try {
    let count = 0
    for (const entry of readdirSync(sessionSpool, { withFileTypes: true })) {
      if (entry.isDirectory()) {
        count += readdirSync(join(sessionSpool, entry.name)).filter((n) => n.endsWith(".ts")).length
      }
    }
    return count
  } catch {
    return 0
  }
}
