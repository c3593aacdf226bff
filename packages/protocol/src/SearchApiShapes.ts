/**
 * Search over what was said and seen (VideoDB's `rtstream.search`, `coll.search(…, "rtstream")`):
 * `POST /rtstream/{id}/search` and `POST /rtstream/collection/{cid}/search`.
 */
import { Schema } from "effect"
import { RtstreamId, SceneIndexId } from "./Ids.js"

export const RTSTREAM_SEARCH_ROUTE = "/rtstream/:rtstream_id/search"
export const COLLECTION_RTSTREAM_SEARCH_ROUTE = "/rtstream/collection/:collection_id/search"

/**
 * What to search: `index_type` `spoken_word` (or `transcript`) searches transcripts, `scene` (or
 * `visual`) visual index results, `audio` audio index results; absent: all of them.
 */
export const SearchRequest = Schema.Struct({
  query: Schema.String.check(
    Schema.isMaxLength(1000),
    Schema.makeFilter((text: string) => text.trim().length > 0 || "expected a non-empty query"),
  ),
  index_type: Schema.optionalKey(
    Schema.NullOr(Schema.Literals(["spoken_word", "transcript", "scene", "visual", "audio"])),
  ),
  scene_index_id: Schema.optionalKey(Schema.NullOr(SceneIndexId)),
  /** The most results to return (default 50, at most 1000). */
  result_threshold: Schema.optionalKey(
    Schema.NullOr(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000 }))),
  ),
  /** Only results scoring at least this (0–1). */
  score_threshold: Schema.optionalKey(
    Schema.NullOr(Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 }))),
  ),
  dynamic_score_percentage: Schema.optionalKey(Schema.NullOr(Schema.Finite)),
  filter: Schema.optionalKey(Schema.NullOr(Schema.Unknown)),
})
export type SearchRequest = typeof SearchRequest.Type

/**
 * A shot: `start`/`end` in Unix seconds (what `shot.generateStream()` takes), and signed URLs
 * playing that range of the rtstream (as `generateStream` hands out; VideoDB's Node SDK asks
 * `GET /rtstream/{id}/stream` itself, other clients can use them as they are).
 */
export const SearchResult = Schema.Struct({
  rtstream_id: RtstreamId,
  rtstream_name: Schema.String,
  session_id: Schema.String,
  start: Schema.Finite,
  end: Schema.Finite,
  text: Schema.String,
  score: Schema.Finite,
  kind: Schema.Literals(["transcript", "visual", "audio"]),
  scene_index_id: Schema.NullOr(Schema.String),
  scene_index_name: Schema.NullOr(Schema.String),
  metadata: Schema.Record(Schema.String, Schema.Unknown),
  stream_url: Schema.String,
  player_url: Schema.String,
})
export type SearchResult = typeof SearchResult.Type

export const SearchResults = Schema.Struct({ results: Schema.Array(SearchResult) })
export type SearchResults = typeof SearchResults.Type
