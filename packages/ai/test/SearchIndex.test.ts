import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { AiEvent, ChannelId, CollectionId, RtstreamId, SceneIndexId, SessionId } from "@capture/protocol"
import Database from "better-sqlite3"
import { describe, expect, it } from "vitest"
import { ftsQueryOf, SearchIndex } from "../src/index.js"

const routing = (account: string, endUser = "user-1") => ({
  account_id: account,
  end_user_id: endUser,
  collection_id: "default" as CollectionId,
  ws_connection_id: null,
  rtstream_name: "mic:default",
})

const spoken = (id: string, account: string, text: string, start: number, endUser?: string): AiEvent => ({
  type: "TranscriptProduced",
  id,
  rtstream_id: "rts-mic" as RtstreamId,
  session_id: "cap-one" as SessionId,
  channel_id: "mic:default" as ChannelId,
  time: new Date(start).toISOString(),
  data: {
    utterance: 1,
    is_final: true,
    text,
    start,
    end: start + 2_000,
    engine: "local",
    segment_index: 0,
    routing: routing(account, endUser),
  },
})

const seen = (id: string, account: string, text: string, start: number): AiEvent => ({
  type: "SceneIndexed",
  id,
  rtstream_id: "rts-screen" as RtstreamId,
  session_id: "cap-one" as SessionId,
  channel_id: "display:1" as ChannelId,
  time: new Date(start).toISOString(),
  data: {
    index_id: "rsi-one" as SceneIndexId,
    kind: "visual",
    index_name: "screen",
    scene: 0,
    text,
    start,
    end: start + 2_000,
    engine: "local",
    routing: { ...routing(account), rtstream_name: "display:1" },
  },
})

describe("the search index", () => {
  it("finds what was said and seen, best first, in Unix seconds, within the account and end user", () => {
    const index = SearchIndex.open()
    const t = 1_763_000_000_000
    index.apply([
      { event: spoken("a/1", "acct-a", "Let's schedule the meeting for Thursday", t), streamSequence: 1 },
      { event: spoken("a/2", "acct-a", "The budget discussion is next week", t + 5_000), streamSequence: 2 },
      {
        event: seen("a/3", "acct-a", 'Screen shows "Quarterly budget review"', t + 9_000),
        streamSequence: 3,
      },
      { event: spoken("b/1", "acct-b", "Our budget discussion", t), streamSequence: 4 },
      // Applied twice (a redelivery): one row.
      { event: spoken("a/2", "acct-a", "The budget discussion is next week", t + 5_000), streamSequence: 5 },
    ])
    expect(index.streamSequence).toBe(5)
    const hits = index.search({ query: "budget discussion", account_id: "acct-a" })
    expect(hits.map((hit) => hit.text)).toEqual([
      "The budget discussion is next week",
      'Screen shows "Quarterly budget review"',
    ])
    expect(hits[0]).toMatchObject({ kind: "transcript", start: (t + 5_000) / 1000, end: (t + 7_000) / 1000 })
    expect(hits[0]?.score).toBeGreaterThan(hits[1]?.score ?? 1)
    // Stemmed: "budgets" finds "budget"; scoped by kind, end user and account.
    expect(index.search({ query: "budgets", account_id: "acct-a", kind: "visual" })).toHaveLength(1)
    expect(index.search({ query: "budget", account_id: "acct-a", end_user_id: "someone-else" })).toEqual([])
    expect(index.search({ query: "budget", account_id: "acct-c" })).toEqual([])
    expect(index.search({ query: "  ", account_id: "acct-a" })).toEqual([])
    // An export's scope: its session, its channels' rtstreams, its time.
    const inExport = (scope: object) =>
      index.search({ query: "budget", account_id: "acct-a", ...scope }).map((hit) => hit.text)
    expect(inExport({ session_id: "cap-one", rtstream_ids: ["rts-mic"] })).toEqual([
      "The budget discussion is next week",
    ])
    expect(inExport({ session_id: "cap-other" })).toEqual([])
    expect(inExport({ rtstream_ids: [] })).toEqual([])
    expect(inExport({ rtstream_ids: ["rts-mic') OR 1=1 --"] })).toEqual([])
    expect(inExport({ from_ms: t + 7_000 })).toEqual(['Screen shows "Quarterly budget review"'])
    expect(inExport({ to_ms: t + 5_000 })).toEqual([])
    expect(inExport({ from_ms: t + 6_000, to_ms: t + 9_001 })).toHaveLength(2)
    index.reset()
    expect(index.streamSequence).toBe(0)
    expect(index.search({ query: "budget", account_id: "acct-a" })).toEqual([])
    index.close()
  })

  it("narrows by rtstream and index, with scope values of any characters", () => {
    const index = SearchIndex.open()
    const t = 1_763_000_000_000
    const odd = 'acct ä/"x" OR *'
    index.apply([
      { event: spoken("b/1", odd, "The budget discussion", t), streamSequence: 1 },
      { event: seen("b/2", odd, "Budget review on screen", t), streamSequence: 2 },
      { event: seen("b/3", "acct", "Budget review on screen", t), streamSequence: 3 },
    ])
    expect(index.search({ query: "budget", account_id: odd })).toHaveLength(2)
    expect(index.search({ query: "budget", account_id: "acct" }).map((hit) => hit.text)).toEqual([
      "Budget review on screen",
    ])
    expect(
      index.search({ query: "budget", account_id: odd, rtstream_id: "rts-mic" }).map((h) => h.kind),
    ).toEqual(["transcript"])
    expect(
      index.search({ query: "budget", account_id: odd, index_id: "rsi-one" }).map((h) => h.kind),
    ).toEqual(["visual"])
    expect(index.search({ query: "budget", account_id: odd, index_id: "rsi-other" })).toEqual([])
    index.close()
  })

  it("rebuilds a file of an older layout from the stream (its cursor back at 0)", () => {
    const dir = mkdtempSync(join(tmpdir(), "capture-search-"))
    try {
      const file = join(dir, "search.db")
      const old = new Database(file)
      old.exec(`
        CREATE TABLE cursor (id INTEGER PRIMARY KEY, stream_sequence INTEGER NOT NULL);
        INSERT INTO cursor VALUES (1, 7);
        CREATE TABLE shots (rowid INTEGER PRIMARY KEY, event_id TEXT, text TEXT);
        CREATE VIRTUAL TABLE shots_text USING fts5(text, content='shots', content_rowid='rowid');
      `)
      old.close()
      const index = SearchIndex.open(file)
      expect(index.streamSequence).toBe(0)
      index.apply([
        { event: spoken("c/1", "acct", "The budget discussion", 1_763_000_000_000), streamSequence: 1 },
      ])
      index.close()
      const again = SearchIndex.open(file)
      expect(again.streamSequence).toBe(1)
      expect(again.search({ query: "budget", account_id: "acct" })).toHaveLength(1)
      again.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("turns any user text into a safe FTS5 query", () => {
    expect(ftsQueryOf('budget" OR x NEAR(')).toBe('"budget" OR "or" OR "x" OR "near"')
    expect(ftsQueryOf("***")).toBeNull()
  })
})
