/**
 * Search over what was said and seen: the AI results stream projected into SQLite FTS5 (through
 * better-sqlite3), one row per final transcript segment and per index result, ranked by BM25
 * (Porter stemming). A projection: every row comes from a stored event (its `Nats-Msg-Id` is the
 * row's key, so an event applied twice is one row), the stream sequence applied last is kept with
 * the rows, and the whole can be thrown away and rebuilt from the stream. Every query is scoped by
 * account, and by collection, end user, rtstream or index when asked.
 */
import type { AiEvent } from "@capture/protocol"
import Database from "better-sqlite3"

/** What a row is: a transcript segment, or a visual or audio index result. */
export type SearchKind = "transcript" | "visual" | "audio"

/** One search result: a shot of an rtstream. `start`/`end` in Unix seconds. */
export interface SearchHit {
  readonly rtstream_id: string
  readonly rtstream_name: string
  readonly session_id: string
  readonly collection_id: string
  readonly kind: SearchKind
  readonly index_id: string | null
  readonly index_name: string | null
  readonly text: string
  readonly start: number
  readonly end: number
  /** 0–1, higher is better: BM25's relevance r as r / (1 + r). */
  readonly score: number
}

export interface SearchQuery {
  readonly query: string
  readonly account_id: string
  readonly collection_id?: string | undefined
  /** A client token of an end user sees only that end user's sessions. */
  readonly end_user_id?: string | undefined
  readonly rtstream_id?: string | undefined
  readonly session_id?: string | undefined
  /** Only these rtstreams (an export's channels); empty: nothing. */
  readonly rtstream_ids?: ReadonlyArray<string> | undefined
  /** Only shots overlapping `[from_ms, to_ms)` (epoch ms). */
  readonly from_ms?: number | undefined
  readonly to_ms?: number | undefined
  readonly index_id?: string | undefined
  readonly kind?: SearchKind | undefined
  readonly limit?: number | undefined
  readonly score_threshold?: number | undefined
}

/** The FTS5 query for a user's words: each a quoted term, any of them (BM25 ranks those with more first). */
export const ftsQueryOf = (text: string): string | null => {
  const terms = (text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).slice(0, 32)
  return terms.length === 0 ? null : terms.map((term) => `"${term}"`).join(" OR ")
}

export class SearchIndex {
  private constructor(private readonly db: Database.Database) {}

  /** Opens (creating) the index at `path`; `:memory:` for one rebuilt from the stream at each start. */
  static open(path = ":memory:"): SearchIndex {
    const db = new Database(path)
    db.pragma("journal_mode = WAL")
    db.exec(`
      CREATE TABLE IF NOT EXISTS cursor (id INTEGER PRIMARY KEY CHECK (id = 1), stream_sequence INTEGER NOT NULL);
      INSERT OR IGNORE INTO cursor (id, stream_sequence) VALUES (1, 0);
      CREATE TABLE IF NOT EXISTS shots (
        rowid INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        account_id TEXT NOT NULL, collection_id TEXT NOT NULL, end_user_id TEXT NOT NULL,
        session_id TEXT NOT NULL, rtstream_id TEXT NOT NULL, rtstream_name TEXT NOT NULL,
        kind TEXT NOT NULL, index_id TEXT, index_name TEXT,
        start_ms REAL NOT NULL, end_ms REAL NOT NULL, text TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS shots_scope ON shots (account_id, collection_id, rtstream_id);
      CREATE VIRTUAL TABLE IF NOT EXISTS shots_text USING fts5(text, content='shots', content_rowid='rowid', tokenize='porter unicode61');
      CREATE TRIGGER IF NOT EXISTS shots_text_insert AFTER INSERT ON shots BEGIN
        INSERT INTO shots_text (rowid, text) VALUES (new.rowid, new.text);
      END;
    `)
    return new SearchIndex(db)
  }

  /** The stream sequence of the last event applied (0: none). */
  get streamSequence(): number {
    return (
      this.db.prepare("SELECT stream_sequence FROM cursor WHERE id = 1").get() as { stream_sequence: number }
    ).stream_sequence
  }

  /**
   * Applies events in stream order, in one transaction; a row already there is kept. A null event
   * (one this version cannot read) only moves the cursor.
   */
  apply(events: ReadonlyArray<{ readonly event: AiEvent | null; readonly streamSequence: number }>): void {
    const insert = this.db.prepare(`
      INSERT OR IGNORE INTO shots (event_id, account_id, collection_id, end_user_id, session_id, rtstream_id,
        rtstream_name, kind, index_id, index_name, start_ms, end_ms, text)
      VALUES (@event_id, @account_id, @collection_id, @end_user_id, @session_id, @rtstream_id,
        @rtstream_name, @kind, @index_id, @index_name, @start_ms, @end_ms, @text)`)
    const advance = this.db.prepare(
      "UPDATE cursor SET stream_sequence = ? WHERE id = 1 AND stream_sequence < ?",
    )
    this.db.transaction(() => {
      for (const { event, streamSequence } of events) {
        const row = event === null ? null : rowOf(event)
        if (row !== null && row.text.trim() !== "") insert.run(row)
        advance.run(streamSequence, streamSequence)
      }
    })()
  }

  /** Everything thrown away, to be rebuilt from the stream's start. */
  reset(): void {
    this.db.exec(
      "DELETE FROM shots; INSERT INTO shots_text (shots_text) VALUES ('delete-all'); UPDATE cursor SET stream_sequence = 0",
    )
  }

  /** The best shots for the query within its scope, best first. */
  search(query: SearchQuery): Array<SearchHit> {
    const match = ftsQueryOf(query.query)
    if (match === null) return []
    const where = ["shots_text MATCH @match", "s.account_id = @account_id"]
    if (query.collection_id !== undefined) where.push("s.collection_id = @collection_id")
    if (query.end_user_id !== undefined) where.push("s.end_user_id = @end_user_id")
    if (query.rtstream_id !== undefined) where.push("s.rtstream_id = @rtstream_id")
    if (query.session_id !== undefined) where.push("s.session_id = @session_id")
    if (query.rtstream_ids !== undefined) {
      if (query.rtstream_ids.length === 0) return []
      // Ids are bound as JSON, never spliced into the SQL.
      where.push("s.rtstream_id IN (SELECT value FROM json_each(@rtstream_ids))")
    }
    if (query.from_ms !== undefined) where.push("s.end_ms > @from_ms")
    if (query.to_ms !== undefined) where.push("s.start_ms < @to_ms")
    if (query.index_id !== undefined) where.push("s.index_id = @index_id")
    if (query.kind !== undefined) where.push("s.kind = @kind")
    const rows = this.db
      .prepare(
        `SELECT s.*, -bm25(shots_text) AS relevance FROM shots_text JOIN shots s ON s.rowid = shots_text.rowid
         WHERE ${where.join(" AND ")} ORDER BY bm25(shots_text) LIMIT @limit`,
      )
      .all({
        match,
        account_id: query.account_id,
        collection_id: query.collection_id ?? null,
        end_user_id: query.end_user_id ?? null,
        rtstream_id: query.rtstream_id ?? null,
        session_id: query.session_id ?? null,
        rtstream_ids: JSON.stringify(query.rtstream_ids ?? []),
        from_ms: query.from_ms ?? null,
        to_ms: query.to_ms ?? null,
        index_id: query.index_id ?? null,
        kind: query.kind ?? null,
        limit: Math.max(1, Math.min(1000, query.limit ?? 50)),
      }) as Array<Record<string, unknown>>
    return rows
      .map((row) => {
        const relevance = Math.max(0, Number(row.relevance))
        return {
          rtstream_id: String(row.rtstream_id),
          rtstream_name: String(row.rtstream_name),
          session_id: String(row.session_id),
          collection_id: String(row.collection_id),
          kind: row.kind as SearchKind,
          index_id: row.index_id === null ? null : String(row.index_id),
          index_name: row.index_name === null ? null : String(row.index_name),
          text: String(row.text),
          start: Number(row.start_ms) / 1000,
          end: Number(row.end_ms) / 1000,
          score: Math.round((relevance / (1 + relevance)) * 1e6) / 1e6,
        }
      })
      .filter((hit) => query.score_threshold === undefined || hit.score >= query.score_threshold)
  }

  close(): void {
    this.db.close()
  }
}

/** The row an event makes: final transcript segments and index results; nothing for the rest. */
const rowOf = (event: AiEvent) => {
  if (event.type === "TranscriptProduced" && event.data.is_final) {
    const { routing } = event.data
    return {
      event_id: event.id,
      account_id: routing.account_id,
      collection_id: routing.collection_id,
      end_user_id: routing.end_user_id,
      session_id: event.session_id,
      rtstream_id: event.rtstream_id,
      rtstream_name: routing.rtstream_name,
      kind: "transcript",
      index_id: null,
      index_name: null,
      start_ms: event.data.start,
      end_ms: event.data.end,
      text: event.data.text,
    }
  }
  if (event.type === "SceneIndexed") {
    const { routing } = event.data
    return {
      event_id: event.id,
      account_id: routing.account_id,
      collection_id: routing.collection_id,
      end_user_id: routing.end_user_id,
      session_id: event.session_id,
      rtstream_id: event.rtstream_id,
      rtstream_name: routing.rtstream_name,
      kind: event.data.kind,
      index_id: event.data.index_id,
      index_name: event.data.index_name,
      start_ms: event.data.start,
      end_ms: event.data.end,
      text: event.data.text,
    }
  }
  return null
}
