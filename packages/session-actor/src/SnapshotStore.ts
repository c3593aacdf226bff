/**
 * Snapshots: a session's folded state every N events, in a KV bucket, so loading a long history
 * reads one snapshot plus a short tail. A snapshot is only a cache: delete it and the state is
 * rebuilt from the stream; one written by another machine version is ignored.
 */
import type { SessionId } from "@capture/protocol"
import type { SessionState } from "./SessionMachine.js"
import type { Topology } from "./Topology.js"

/**
 * Bump when the fold changes, so old snapshots are not trusted. 2: a stop that starts the
 * automatic export shows it as `exporting`; completed exports carry raw asset ids. 3: expiry of
 * `created` sessions, channel pauses, export attempts and the automatic export request. 4: the
 * context records when the session activated (`activated_at`, the rtstreams' `created_at`).
 */
export const MACHINE_VERSION = 4

/** A stored snapshot. */
export interface Snapshot {
  readonly machine_version: number
  readonly stream_sequence: number
  readonly state: SessionState
}

export class SnapshotStore {
  constructor(private readonly topology: Topology) {}

  /** The latest usable snapshot of a session, if any. */
  async load(sessionId: SessionId | string): Promise<Snapshot | undefined> {
    const entry = await this.topology.snapshots.get(sessionId)
    if (entry === null || entry.operation !== "PUT") return undefined
    try {
      const snapshot = entry.json<Snapshot>()
      return snapshot.machine_version === MACHINE_VERSION ? snapshot : undefined
    } catch {
      return undefined
    }
  }

  /** Stores a snapshot; an older one never replaces a newer one. */
  async save(sessionId: SessionId | string, state: SessionState, streamSequence: number): Promise<void> {
    const current = await this.load(sessionId)
    if (current !== undefined && current.stream_sequence >= streamSequence) return
    const snapshot: Snapshot = { machine_version: MACHINE_VERSION, stream_sequence: streamSequence, state }
    await this.topology.snapshots.put(sessionId, JSON.stringify(snapshot))
  }
}
