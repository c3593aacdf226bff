/**
 * Everything a process needs to run capture sessions on one NATS connection, wired together:
 * the stores, the actor host and, when asked, the background workers (projector, timer wheel,
 * and the session reactor when given the segment records it reads).
 */
import { inSpan } from "@capture/jetstream"
import type { NatsConnection } from "@nats-io/transport-node"
import { ActorHost, type ActorHostOptions } from "./ActorHost.js"
import { TimerStore, TimerWheel } from "./DurableTimers.js"
import { EventStore } from "./EventStore.js"
import { Projector } from "./Projector.js"
import { SessionReactor, type SessionReactorOptions } from "./SessionReactor.js"
import { SessionReadModel } from "./SessionReadModel.js"
import { SnapshotStore } from "./SnapshotStore.js"
import { openTopology, type Topology, type TopologyOptions } from "./Topology.js"

export interface SessionRuntimeOptions {
  readonly topology?: Partial<TopologyOptions>
  readonly host?: Partial<ActorHostOptions>
  /** Run the projector and the timer wheel in this process (the server does; tools need not). */
  readonly workers?: boolean
  /** Run the session reactor in this process (with `workers`); it needs the segment records. */
  readonly reactor?: Omit<SessionReactorOptions, "log">
  readonly log?: (message: string) => void
}

export interface SessionRuntime {
  readonly topology: Topology
  readonly events: EventStore
  readonly snapshots: SnapshotStore
  readonly timers: TimerStore
  readonly host: ActorHost
  readonly readModel: SessionReadModel
  readonly projector: Projector | undefined
  readonly timerWheel: TimerWheel | undefined
  readonly reactor: SessionReactor | undefined
  /** Stops the workers and appends (the connection stays open: its owner closes it). */
  readonly stop: () => Promise<void>
}

export const startSessionRuntime = async (
  nc: NatsConnection,
  options: SessionRuntimeOptions = {},
): Promise<SessionRuntime> => {
  const log = options.log ?? (() => {})
  const topology = await openTopology(nc, options.topology)
  const events = await EventStore.make(topology)
  const snapshots = new SnapshotStore(topology, log)
  const timers = new TimerStore(topology, log)
  const host = new ActorHost(events, snapshots, timers, options.host)
  const readModel = new SessionReadModel(topology, log)
  let projector: Projector | undefined
  let timerWheel: TimerWheel | undefined
  let reactor: SessionReactor | undefined
  if (options.workers === true) {
    projector = new Projector(topology, host, readModel, timers, log)
    timerWheel = new TimerWheel(
      topology,
      async (command, parent) => {
        if (command.type === "FireTimer" && command.timer === "silence") {
          // The reactor's own timer: a process without a reactor leaves it to one that has.
          await reactor?.checkSilence(command.session_id)
          return
        }
        // A span of its own in the trace of the command that armed it (tracing on).
        const outcome = await inSpan(
          `timer ${command.type === "FireTimer" ? command.timer : command.type}`,
          { parent, attributes: { "capture.session_id": command.session_id } },
          (span) => host.execute(command, span),
        )
        if (outcome._tag === "Failure" && outcome.failure.error_code !== "session_not_found") {
          log(`timer ${command.command_id}: ${outcome.failure.message}`)
        }
      },
      log,
      undefined,
      timers,
    )
    try {
      await projector.start()
      // Before the wheel: the reactor handles the `silence` timers the wheel fires.
      if (options.reactor !== undefined) {
        reactor = await SessionReactor.start({ topology, host, timers }, { ...options.reactor, log })
      }
      await timerWheel.start()
    } catch (error) {
      // A start that failed half-way (NATS away) leaves nothing running, so a caller may retry it.
      await Promise.allSettled([reactor?.stop(), timerWheel.stop(), projector.stop()])
      events.close()
      throw error
    }
  }
  return {
    topology,
    events,
    snapshots,
    timers,
    host,
    readModel,
    projector,
    timerWheel,
    reactor,
    stop: async () => {
      await reactor?.stop()
      await timerWheel?.stop()
      await projector?.stop()
      events.close()
    },
  }
}
