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

/** The tables' layout; an index of another is rebuilt. 2: the scope as a full-text column; 3: the session in it. */
const SCHEMA_VERSION = 3

/**
 * A scope value as one full-text token: a letter for the field, then each UTF-8 byte as three
 * digits. Digits only, so the tokenizer neither splits nor stems it, and no two values meet.
 */
const scopeToken = (field: string, value: string): string =>
  field + Array.from(Buffer.from(value, "utf8"), (byte) => String(byte).padStart(3, "0")).join("")

/** The `scope` column of a row: what searches narrow by. */
const scopeOf = (row: NonNullable<ReturnType<typeof rowOf>>): string =>
  [
    scopeToken("a", row.account_id),
    scopeToken("c", row.collection_id),
    scopeToken("u", row.end_user_id),
    scopeToken("r", row.rtstream_id),
    scopeToken("s", row.session_id),
    ...(row.index_id === null ? [] : [scopeToken("i", row.index_id)]),
    scopeToken("k", row.kind),
  ].join(" ")

export class SearchIndex {
  /** Prepared queries by the scope's shape. */
  private readonly statements = new Map<string, Database.Statement>()

  private constructor(private readonly db: Database.Database) {}

  /** Opens (creating) the index at `path`; `:memory:` for one rebuilt from the stream at each start. */
  static open(path = ":memory:"): SearchIndex {
    const db = new Database(path)
    db.pragma("journal_mode = WAL")
    // An index of an older layout is thrown away: the cursor at 0 rebuilds it from the stream.
    if (db.pragma("user_version", { simple: true }) !== SCHEMA_VERSION) {
      db.exec(`
        DROP TRIGGER IF EXISTS shots_text_insert; DROP TABLE IF EXISTS shots_text;
        DROP TABLE IF EXISTS shots; DROP TABLE IF EXISTS cursor;
      `)
      db.pragma(`user_version = ${SCHEMA_VERSION}`)
    }
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
      CREATE VIRTUAL TABLE IF NOT EXISTS shots_text USING fts5(text, scope, content='', tokenize='porter unicode61');
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
    const insertText = this.db.prepare("INSERT INTO shots_text (rowid, text, scope) VALUES (?, ?, ?)")
    const advance = this.db.prepare(
      "UPDATE cursor SET stream_sequence = ? WHERE id = 1 AND stream_sequence < ?",
    )
    this.db.transaction(() => {
      for (const { event, streamSequence } of events) {
        const row = event === null ? null : rowOf(event)
        if (row !== null && row.text.trim() !== "") {
          const inserted = insert.run(row)
          if (inserted.changes === 1) insertText.run(inserted.lastInsertRowid, row.text, scopeOf(row))
        }
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

  /**
   * The best shots for the query within its scope, best first. The scope is part of the full-text
   * query (the `scope` column's tokens), so FTS5 ranks only the shots in scope and hands back the
   * best `limit`: joining every match to its row to check the scope cost 3–7× more on a million
   * shots (bench:index). The rows' own columns are checked again on the few returned.
   */
  search(query: SearchQuery): Array<SearchHit> {
    const match = ftsQueryOf(query.query)
    if (match === null) return []
    const scope: Array<string> = [scopeToken("a", query.account_id)]
    const where = ["s.account_id = @account_id"]
    const narrow = (prefix: string, column: string, value: string | undefined) => {
      if (value === undefined) return
      scope.push(scopeToken(prefix, value))
      where.push(`s.${column} = @${column}`)
    }
    narrow("c", "collection_id", query.collection_id)
    narrow("u", "end_user_id", query.end_user_id)
    narrow("r", "rtstream_id", query.rtstream_id)
    narrow("s", "session_id", query.session_id)
    narrow("i", "index_id", query.index_id)
    narrow("k", "kind", query.kind)
    if (query.rtstream_ids !== undefined) {
      if (query.rtstream_ids.length === 0) return []
      // Tokens of ids, never SQL: the ids reach the query as full-text terms only.
      scope.push(`(${query.rtstream_ids.map((id) => scopeToken("r", id)).join(" OR ")})`)
    }
    // A time window is no full-text term: it is checked on the rows, so FTS5 cannot stop at the best few.
    const windowed = query.from_ms !== undefined || query.to_ms !== undefined
    if (query.from_ms !== undefined) where.push("s.end_ms > @from_ms")
    if (query.to_ms !== undefined) where.push("s.start_ms < @to_ms")
    const key = where.join(" AND ")
    let statement = this.statements.get(key)
    if (statement === undefined) {
      // bm25 weighs the text alone (the scope column's weight 0).
      statement = this.db.prepare(
        `SELECT s.*, -m.rank AS relevance FROM (
           SELECT rowid, bm25(shots_text, 1.0, 0.0) AS rank FROM shots_text WHERE shots_text MATCH @match
           ORDER BY rank ${windowed ? "" : "LIMIT @limit"}
         ) m JOIN shots s ON s.rowid = m.rowid WHERE ${key} ORDER BY m.rank ${windowed ? "LIMIT @limit" : ""}`,
      )
      this.statements.set(key, statement)
    }
    const rows = statement.all({
      match: `{scope} : (${scope.join(" AND ")}) AND {text} : (${match})`,
      account_id: query.account_id,
      collection_id: query.collection_id ?? null,
      end_user_id: query.end_user_id ?? null,
      rtstream_id: query.rtstream_id ?? null,
      session_id: query.session_id ?? null,
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
