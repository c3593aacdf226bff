/**
 * Snapshots: a session's folded state every N events, in a KV bucket, so loading a long history
 * reads one snapshot plus a short tail. A snapshot is only a cache: delete it and the state is
 * rebuilt from the stream; one written by another machine version, or one that does not decode,
 * is ignored (the latter logged).
 */
import {
  ChannelExport,
  ChannelId,
  Channel as ChannelSchema,
  CollectionId,
  decodeJson,
  ExportedAssetIds,
  FailureReason,
  Metadata,
  Rtstream,
  RtstreamCategory,
  RtstreamId,
  type SessionId,
  SessionId as SessionIdSchema,
} from "@capture/protocol"
import { Result, Schema } from "effect"
import type { SessionState } from "./SessionMachine.js"
import type { Topology } from "./Topology.js"

/**
 * Bump when the fold changes, so old snapshots are not trusted. 2: a stop that starts the
 * automatic export shows it as `exporting`; completed exports carry raw asset ids. 3: expiry of
 * `created` sessions, channel pauses, export attempts and the automatic export request. 4: the
 * context records when the session activated (`activated_at`, the rtstreams' `created_at`). 5:
 * rtstreams hold their category in `channel_id`, and stopped rtstreams are listed. 6: an
 * automatic stop's late-media window (`stop_requested_at`, `media_before`, `late_media_until`).
 */
export const MACHINE_VERSION = 6

const OptionalString = Schema.NullOr(Schema.String)

/**
 * A session state as a snapshot stores it. Typed against `SessionState`, so a field added to the
 * session's context does not compile until it is added here too.
 */
const StoredState: Schema.Codec<SessionState, unknown> = Schema.Struct({
  value: Schema.Literals([
    "none",
    "created",
    "starting",
    "active",
    "stopping",
    "stopped",
    "exported",
    "failed",
  ]),
  context: Schema.Struct({
    session_id: Schema.NullOr(SessionIdSchema),
    collection_id: Schema.NullOr(CollectionId),
    account_id: Schema.String,
    end_user_id: Schema.String,
    client_id: OptionalString,
    callback_url: OptionalString,
    ws_connection_id: OptionalString,
    ws_connection_ids: Schema.Array(Schema.String),
    metadata: Metadata,
    channels: Schema.Array(ChannelSchema),
    primary_video_channel_id: Schema.NullOr(ChannelId),
    rtstreams: Schema.Array(Schema.Struct({ ...Rtstream.fields, channel_id: RtstreamCategory })),
    stopped_rtstream_ids: Schema.Array(RtstreamId),
    activated_at: OptionalString,
    exports: Schema.Array(ChannelExport),
    exported_asset_ids: ExportedAssetIds,
    channel_pauses: Schema.Array(
      Schema.Struct({ channel_id: ChannelId, from_ms: Schema.Finite, to_ms: Schema.NullOr(Schema.Finite) }),
    ),
    pauses_changed_at: OptionalString,
    automatic_export_requested: Schema.Boolean,
    export_failures: Schema.Record(Schema.String, Schema.Int),
    error: Schema.NullOr(FailureReason),
    stop_reason: OptionalString,
    stop_requested_at: OptionalString,
    media_before: OptionalString,
    late_media_until: OptionalString,
    expire_deadline: OptionalString,
    start_deadline: OptionalString,
    stop_deadline: OptionalString,
    created_by: OptionalString,
    created_at: OptionalString,
    updated_at: OptionalString,
    sequence: Schema.Int,
  }),
})

/** A stored snapshot. */
export const Snapshot = Schema.Struct({
  machine_version: Schema.Int,
  stream_sequence: Schema.Int,
  state: StoredState,
})
export type Snapshot = typeof Snapshot.Type

const decodeVersion = decodeJson(Schema.Struct({ machine_version: Schema.Int }))
const decodeSnapshot = decodeJson(Snapshot)

export class SnapshotStore {
  constructor(
    private readonly topology: Topology,
    private readonly log: (message: string) => void = () => {},
  ) {}

  /** The latest usable snapshot of a session, if any. */
  async load(sessionId: SessionId | string): Promise<Snapshot | undefined> {
    const entry = await this.topology.snapshots.get(sessionId)
    if (entry === null || entry.operation !== "PUT") return undefined
    const snapshot = decodeSnapshot(entry.value)
    if (Result.isSuccess(snapshot))
      return snapshot.success.machine_version === MACHINE_VERSION ? snapshot.success : undefined
    // Another machine version may store another shape: ignored without a word.
    const version = decodeVersion(entry.value)
    if (Result.isSuccess(version) && version.success.machine_version !== MACHINE_VERSION) return undefined
    this.log(`snapshots: the snapshot of ${sessionId} does not decode (${snapshot.failure.message}); ignored`)
    return undefined
  }

  /** Stores a snapshot; an older one never replaces a newer one. */
  async save(sessionId: SessionId | string, state: SessionState, streamSequence: number): Promise<void> {
    const current = await this.load(sessionId)
    if (current !== undefined && current.stream_sequence >= streamSequence) return
    const snapshot: Snapshot = { machine_version: MACHINE_VERSION, stream_sequence: streamSequence, state }
    await this.topology.snapshots.put(sessionId, JSON.stringify(snapshot))
  }
}
