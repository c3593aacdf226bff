/**
 * The read model: each session's client-facing view in a KV bucket, for get and list. It is a
 * projection of the event stream — written by the projector, never by command handling — and
 * can be dropped and rebuilt from the stream at any time. A stored view that does not decode is
 * logged and read as absent; the session's next projection replaces it.
 */
import { createHash } from "node:crypto"
import { isRevisionConflict } from "@capture/jetstream"
import {
  AssetId,
  CaptureSession,
  ChannelId,
  CollectionId,
  decodeJson,
  Rtstream,
  RtstreamStatus,
  type RtstreamView,
  rtstreamCategoryOf,
  type SessionId,
  type SessionStatus,
} from "@capture/protocol"
import { Result, Schema } from "effect"
import { mainExportChannel } from "./ExportPolicy.js"
import type { SessionState } from "./SessionMachine.js"
import type { Topology } from "./Topology.js"

/** A stored view, with the position it reflects and the account that owns it. */
export const SessionRecord = Schema.Struct({
  account_id: Schema.String,
  /** The session's sequence the view reflects. */
  sequence: Schema.Int,
  stream_sequence: Schema.Int,
  session: CaptureSession,
})
export type SessionRecord = typeof SessionRecord.Type

/** A view as an older version stored it: fields added since may be missing (`upgraded` adds them). */
const StoredRecord = Schema.Struct({
  ...SessionRecord.fields,
  session: Schema.Struct({
    ...CaptureSession.fields,
    paused_channel_ids: Schema.optionalKey(Schema.Array(ChannelId)),
    rtstreams: Schema.Array(
      Schema.Struct({
        ...Rtstream.fields,
        collection_id: Schema.optionalKey(CollectionId),
        status: Schema.optionalKey(RtstreamStatus),
        created_at: Schema.optionalKey(Schema.String),
        exported_asset_id: Schema.optionalKey(Schema.NullOr(AssetId)),
      }),
    ),
  }),
})
type StoredRecord = typeof StoredRecord.Type

const decodeRecord = decodeJson(StoredRecord)
/** Only the position: what a write compares with, without decoding the whole view. */
const decodePosition = decodeJson(
  Schema.Struct({
    sequence: Schema.Int,
    account_id: Schema.optionalKey(Schema.String),
    session: Schema.optionalKey(
      Schema.Struct({
        id: Schema.String,
        collection_id: Schema.String,
        status: Schema.String,
        end_user_id: Schema.String,
        rtstreams: Schema.Array(Schema.Unknown),
      }),
    ),
  }),
)

/** What a list filters on, as stored in a view. */
interface Indexed {
  readonly account_id: string
  readonly session: {
    readonly id: string
    readonly collection_id: string
    readonly status: string
    readonly end_user_id: string
  }
}

/** An end user id as a key token: any text, hashed to letters and digits. */
const endUserToken = (endUserId: string): string =>
  createHash("sha256").update(endUserId).digest("hex").slice(0, 32)

/** The index key of a view: filters are wildcards over its tokens, the session id is last. */
const indexKeyOf = (record: Indexed): string =>
  `${record.account_id}.${record.session.collection_id}.${record.session.status}.${endUserToken(record.session.end_user_id)}.${record.session.id}`

/** The index keys a query may match (a subject filter). */
const indexFilterOf = (query: ListQuery): string =>
  [
    query.account_id ?? "*",
    query.collection_id ?? "*",
    query.status ?? "*",
    query.end_user_id === undefined ? "*" : endUserToken(query.end_user_id),
    "*",
  ].join(".")

/** Whether an id is safe as one token of a KV key (ids are; anything else is never indexed). */
const isToken = (text: string): boolean => /^[A-Za-z0-9_-]{1,128}$/.test(text)
const isIndexable = (record: Indexed): boolean =>
  isToken(record.account_id) &&
  isToken(record.session.collection_id) &&
  isToken(record.session.status) &&
  isToken(record.session.id)

/** The marker saying every view was indexed (views written before the index existed included). */
const INDEXED_MARKER = "_meta.indexed"

/**
 * An rtstream is live while its session captures; once the session has ended, so has it. (One a
 * client stopped shows `stopped` while the session still captures: `toCaptureSession`.)
 */
export const rtstreamStatusOf = (status: SessionStatus): RtstreamStatus =>
  status === "active" || status === "stopping" ? "connected" : "stopped"

/** The client-facing view of a session state (null before the session exists). */
export const toCaptureSession = (state: SessionState): CaptureSession | null => {
  const c = state.context
  if (state.value === "none" || c.session_id === null || c.collection_id === null) return null
  const collection_id = c.collection_id
  const rtstreamStatus = rtstreamStatusOf(state.value)
  // Rtstreams are made on activation; before it there are none to date.
  const rtstreamCreatedAt = c.activated_at ?? ""
  // The primary display's export, or the one the stop started when the primary is not stored.
  const mainChannel = mainExportChannel(c.channels, c.primary_video_channel_id)
  const main = c.exports.find((e) => e.video_channel_id === mainChannel)
  const exported_videos: Record<string, CaptureSession["exported_video_id"] & string> = {}
  for (const e of c.exports) {
    if (e.export_status === "exported" && e.video_id !== null)
      exported_videos[e.video_channel_id ?? "audio"] = e.video_id
  }
  return {
    id: c.session_id,
    session_id: c.session_id,
    collection_id: c.collection_id,
    end_user_id: c.end_user_id,
    client_id: c.client_id,
    status: state.value,
    callback_url: c.callback_url,
    ws_connection_id: c.ws_connection_id,
    metadata: c.metadata,
    channels: c.channels,
    paused_channel_ids: c.channel_pauses.filter((p) => p.to_ms === null).map((p) => p.channel_id),
    primary_video_channel_id: c.primary_video_channel_id,
    rtstreams: c.rtstreams.map((r) => ({
      ...r,
      collection_id,
      status: c.stopped_rtstream_ids.includes(r.rtstream_id) ? "stopped" : rtstreamStatus,
      created_at: rtstreamCreatedAt,
      // Asset ids are keyed by the capture channel, which the rtstream's `name` is.
      exported_asset_id: c.exported_asset_ids[r.name] ?? null,
    })),
    export_status: main?.export_status ?? null,
    exported_video_id: main?.video_id ?? null,
    exported_videos,
    exports: c.exports,
    error: c.error,
    stop_reason: c.stop_reason,
    created_at: c.created_at ?? "",
    updated_at: c.updated_at ?? "",
  }
}

/** Where an rtstream lives: written once, when its session's view first lists it. */
export interface RtstreamRecord {
  readonly rtstream_id: string
  readonly session_id: string
  readonly channel_id: string
  readonly account_id: string
}

/** List filters; `cursor` is the last id of the previous page (lists run newest first). */
export interface ListQuery {
  readonly account_id?: string
  readonly collection_id?: string
  readonly status?: SessionStatus
  readonly end_user_id?: string
  readonly limit?: number
  readonly cursor?: string
}

/** A page of sessions. `next_page` is the cursor for the next page, null on the last. */
export interface SessionPage {
  readonly sessions: ReadonlyArray<CaptureSession>
  readonly next_page: string | null
}

/** How many sessions' last written views a process remembers (see `upsert`). */
const WRITTEN_LIMIT = 10_000

export class SessionReadModel {
  /** The view this process last wrote per session, and its revision, oldest first. */
  private readonly written = new Map<string, { readonly revision: number; readonly record: SessionRecord }>()

  constructor(
    private readonly topology: Topology,
    private readonly log: (message: string) => void = () => {},
  ) {}

  /** A session's record, or undefined (also when the stored one does not decode). */
  async get(sessionId: SessionId | string): Promise<SessionRecord | undefined> {
    const entry = await this.topology.sessions.get(sessionId)
    if (entry === null || entry.operation !== "PUT") return undefined
    const record = decodeRecord(entry.value)
    if (Result.isSuccess(record)) return upgraded(record.success)
    this.log(`read model: the view of ${sessionId} does not decode (${record.failure.message}); skipped`)
    return undefined
  }

  /**
   * Writes a state's view unless the stored one is as new or newer. Compare-and-set on the KV
   * revision, so concurrent projectors (any number of processes) never move a view backwards.
   * A view this process wrote itself is not read again first: the write's revision check stands
   * for the read (a state no newer than the one it wrote is not written at all).
   */
  async upsert(state: SessionState, streamSequence: number): Promise<boolean> {
    const session = toCaptureSession(state)
    if (session === null) return false
    const record: SessionRecord = {
      account_id: state.context.account_id,
      sequence: state.context.sequence,
      stream_sequence: streamSequence,
      session,
    }
    const bucket = this.topology.sessions
    // The view this process wrote last, when it has one: compared with as if read (the write's
    // compare-and-set proves it is still the stored one, or the loop reads it again).
    let written = this.written.get(session.id)
    for (;;) {
      const entry = written === undefined ? await bucket.get(session.id) : undefined
      const revision = written !== undefined ? written.revision : entry === null ? undefined : entry?.revision
      // A stored view that does not decode is overwritten.
      const current =
        written !== undefined
          ? Result.succeed(written.record)
          : entry !== null && entry !== undefined && entry.operation === "PUT"
            ? decodePosition(entry.value)
            : undefined
      if (current !== undefined && Result.isSuccess(current) && current.success.sequence >= record.sequence)
        return false
      // Before the view lists them, so an rtstream a client can see can always be found.
      const listed =
        current !== undefined && Result.isSuccess(current)
          ? (current.success.session?.rtstreams.length ?? 0)
          : 0
      if (session.rtstreams.length > listed) await this.indexRtstreams(record)
      const before =
        current !== undefined && Result.isSuccess(current) && current.success.session !== undefined
          ? indexKeyOf({ account_id: current.success.account_id ?? "", session: current.success.session })
          : undefined
      const after = indexKeyOf(record)
      // Before the view: a list finds every view by its index key (one a view no longer matches is skipped).
      if (after !== before && isIndexable(record)) await this.topology.sessionIndex.put(after, "")
      let stored: number
      try {
        stored =
          revision === undefined
            ? await bucket.create(session.id, JSON.stringify(record))
            : await bucket.update(session.id, JSON.stringify(record), revision)
      } catch (error) {
        this.forgetWritten(session.id)
        written = undefined
        if (!isRevisionConflict(error)) throw error
        continue
      }
      this.rememberWritten(session.id, { revision: stored, record })
      if (before !== undefined && before !== after) await this.topology.sessionIndex.purge(before)
      return true
    }
  }

  /** Which session an rtstream belongs to, or undefined (unknown, or not projected yet). */
  async rtstream(rtstreamId: string): Promise<RtstreamRecord | undefined> {
    const entry = await this.topology.rtstreams.get(rtstreamId)
    return entry === null || entry.operation !== "PUT" ? undefined : entry.json<RtstreamRecord>()
  }

  private rememberWritten(
    sessionId: string,
    written: { readonly revision: number; readonly record: SessionRecord },
  ): void {
    this.written.delete(sessionId)
    this.written.set(sessionId, written)
    if (this.written.size > WRITTEN_LIMIT) {
      const oldest = this.written.keys().next().value
      if (oldest !== undefined) this.written.delete(oldest)
    }
  }

  private forgetWritten(sessionId: string): void {
    this.written.delete(sessionId)
  }

  private async indexRtstreams(record: SessionRecord): Promise<void> {
    for (const rtstream of record.session.rtstreams) {
      const indexed: RtstreamRecord = {
        rtstream_id: rtstream.rtstream_id,
        session_id: record.session.id,
        channel_id: rtstream.channel_id,
        account_id: record.account_id,
      }
      try {
        await this.topology.rtstreams.create(rtstream.rtstream_id, JSON.stringify(indexed))
      } catch (error) {
        // Written before (another projector, or a retry): the same fact.
        if (!isRevisionConflict(error)) throw error
      }
    }
  }

  /**
   * A page of sessions, newest first. Ids sort by creation time, so the cursor is an id. Reads
   * the index keys the filters match (the server filters them: a filter matching nothing reads
   * nothing), then their views in batches, each checked against the filters again (an index key
   * is written before its view and removed after it changed).
   */
  async list(query: ListQuery = {}): Promise<SessionPage> {
    const limit = Math.min(Math.max(query.limit ?? 20, 1), 100)
    await this.ensureIndexed()
    const found = new Set<string>()
    for await (const key of await this.topology.sessionIndex.keys(indexFilterOf(query))) {
      const id = key.slice(key.lastIndexOf(".") + 1)
      if (query.cursor === undefined || id < query.cursor) found.add(id)
    }
    const keys = [...found].sort().reverse()
    const sessions: Array<CaptureSession> = []
    let scanned = 0
    const batch = 32
    while (scanned < keys.length && sessions.length < limit) {
      const slice = keys.slice(scanned, scanned + batch)
      const records = await Promise.all(slice.map((key) => this.get(key)))
      for (const [i, record] of records.entries()) {
        scanned++
        if (record === undefined || !matches(record, query)) continue
        sessions.push(record.session)
        if (sessions.length === limit) {
          scanned = scanned - (slice.length - i - 1)
          break
        }
      }
    }
    const last = sessions.at(-1)
    return {
      sessions,
      next_page: sessions.length === limit && scanned < keys.length && last ? last.id : null,
    }
  }

  /**
   * How many sessions the index lists with `status`, over every account: one key listing, whose
   * cost grows with the sessions that ever had the status (the index keeps a marker for each key
   * it moved), so callers sample it, not count with it on a hot path.
   */
  async countWithStatus(status: string): Promise<number> {
    let count = 0
    for await (const _ of await this.topology.sessionIndex.keys(`*.*.${status}.*.*`)) count++
    return count
  }

  /**
   * Every stored view matching the filters (`limit` and `cursor` aside), in key order, read in
   * batches: what a listing that needs every match (counting, sorting by another field) walks.
   */
  async *scan(query: Omit<ListQuery, "limit" | "cursor"> = {}): AsyncGenerator<SessionRecord> {
    const keys: Array<string> = []
    for await (const key of await this.topology.sessions.keys()) keys.push(key)
    keys.sort()
    const batch = 32
    for (let i = 0; i < keys.length; i += batch) {
      const records = await Promise.all(keys.slice(i, i + batch).map((key) => this.get(key)))
      for (const record of records) if (record !== undefined && matches(record, query)) yield record
    }
  }

  /** Removes every view and index key (before a rebuild). */
  async clear(): Promise<void> {
    this.written.clear()
    for await (const key of await this.topology.sessions.keys()) await this.topology.sessions.purge(key)
    for await (const key of await this.topology.sessionIndex.keys())
      await this.topology.sessionIndex.purge(key)
  }

  private indexed: Promise<void> | undefined

  /**
   * Indexes the views written before the index existed, once per deployment (then marked); any
   * number of processes may do it at once: a key is the same fact whoever writes it.
   */
  ensureIndexed(): Promise<void> {
    this.indexed ??= (async () => {
      const marker = await this.topology.sessionIndex.get(INDEXED_MARKER)
      if (marker !== null && marker.operation === "PUT") return
      const keys: Array<string> = []
      for await (const key of await this.topology.sessions.keys()) keys.push(key)
      const batch = 32
      for (let i = 0; i < keys.length; i += batch) {
        const records = await Promise.all(keys.slice(i, i + batch).map((key) => this.get(key)))
        await Promise.all(
          records.map((record) =>
            record !== undefined && isIndexable(record)
              ? this.topology.sessionIndex.put(indexKeyOf(record), "")
              : undefined,
          ),
        )
      }
      await this.topology.sessionIndex.put(INDEXED_MARKER, new Date().toISOString())
    })().catch((error: unknown) => {
      this.indexed = undefined
      throw error
    })
    return this.indexed
  }
}

/**
 * A view written by an older version gets the fields added since, so it satisfies
 * `CaptureSession` until it is next projected: `paused_channel_ids` empty; per rtstream
 * `exported_asset_id` null (those sessions' exports named no assets), `collection_id` and `status`
 * from the session, `created_at` the session's creation (the activation time was not recorded then),
 * and `channel_id` the category of the capture channel its `name` holds (older views held the
 * channel id there too).
 */
const upgraded = ({ session, ...record }: StoredRecord): SessionRecord => ({
  ...record,
  session: {
    ...session,
    paused_channel_ids: session.paused_channel_ids ?? [],
    rtstreams: session.rtstreams.map(
      (r): RtstreamView => ({
        ...r,
        channel_id: rtstreamCategoryOf(r.name),
        exported_asset_id: r.exported_asset_id ?? null,
        collection_id: r.collection_id ?? session.collection_id,
        status: r.status ?? rtstreamStatusOf(session.status),
        created_at: r.created_at ?? session.created_at,
      }),
    ),
  },
})

const matches = (record: SessionRecord, query: ListQuery): boolean =>
  (query.account_id === undefined || record.account_id === query.account_id) &&
  (query.collection_id === undefined || record.session.collection_id === query.collection_id) &&
  (query.status === undefined || record.session.status === query.status) &&
  (query.end_user_id === undefined || record.session.end_user_id === query.end_user_id)
