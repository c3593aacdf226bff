/**
 * Where Capture keeps its data in NATS: the event stream and the KV buckets, with their names
 * and replication. One `Topology` per deployment; every process opens the same one.
 */
import { createRacing, ensureStream } from "@capture/jetstream"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { type KV, Kvm } from "@nats-io/kv"
import type { NatsConnection } from "@nats-io/transport-node"

/** Names and replication of the stream and buckets. */
export interface TopologyOptions {
  /** Stream replicas: 1 on a single server, 3 on a cluster. */
  readonly replicas: number
  /** Prefix for every stream, bucket and subject, so several deployments can share a server. */
  readonly prefix: string
}

export const defaultTopology: TopologyOptions = { replicas: 1, prefix: "capture" }

/** Opened stream and buckets. */
export interface Topology {
  readonly nc: NatsConnection
  readonly options: TopologyOptions
  readonly eventStream: string
  readonly eventSubject: (sessionId: string) => string
  readonly eventSubjects: string
  readonly sessions: KV
  readonly snapshots: KV
  readonly timers: KV
  /** rtstream id → its session (`RtstreamRecord`), written by the projector with the view. */
  readonly rtstreams: KV
  /** What lists read instead of every view: `<account>.<collection>.<status>.<end user>.<session>` keys. */
  readonly sessionIndex: KV
}

/** Creates (if missing) and opens the stream and buckets. Safe to run from many processes at once. */
export const openTopology = async (
  nc: NatsConnection,
  options: Partial<TopologyOptions> = {},
): Promise<Topology> => {
  const resolved: TopologyOptions = { ...defaultTopology, ...options }
  const { prefix, replicas } = resolved
  const eventStream = `${prefix.toUpperCase()}_EVENTS`
  const eventSubjects = `${prefix}.events.>`
  await ensureStream(await jetstreamManager(nc), { name: eventStream, subjects: [eventSubjects], replicas })
  const kvm = new Kvm(jetstream(nc))
  const [sessions, snapshots, timers, rtstreams, sessionIndex] = await Promise.all([
    createRacing(() => kvm.create(`${prefix}_sessions`, { replicas, history: 1 })),
    createRacing(() => kvm.create(`${prefix}_snapshots`, { replicas, history: 1 })),
    createRacing(() => kvm.create(`${prefix}_timers`, { replicas, history: 1 })),
    createRacing(() => kvm.create(`${prefix}_rtstreams`, { replicas, history: 1 })),
    createRacing(() => kvm.create(`${prefix}_session_index`, { replicas, history: 1 })),
  ])
  return {
    nc,
    options: resolved,
    eventStream,
    eventSubjects,
    eventSubject: (sessionId) => `${prefix}.events.${sessionId}`,
    sessions,
    snapshots,
    timers,
    rtstreams,
    sessionIndex,
  }
}
