/**
 * Search of an exported video, as VideoDB's SDKs call it on `coll.getVideo(id)`:
 * `video.indexSpokenWords()` (`POST /video/{id}/index`), `video.search(query)` (`POST
 * /video/{id}/search`), and `shot.generateStream()` / `video.generateStream(timeline)` (`POST
 * /video/{id}/stream`). The spoken words of an export are the final transcript of its session's
 * audio rtstreams, already indexed as they were transcribed; times are seconds of the video.
 */
import { Schema } from "effect"
import { MAX_TIMELINE_RANGES } from "./ExportUrls.js"
import { SceneIndexId, SessionId, VideoId } from "./Ids.js"

export const VIDEO_ROUTE = "/video/:video_id"
export const VIDEO_INDEX_ROUTE = "/video/:video_id/index"
export const VIDEO_SEARCH_ROUTE = "/video/:video_id/search"
export const VIDEO_STREAM_ROUTE = "/video/:video_id/stream"
/** `video.getTranscript()`, `getTranscriptText()` (GET) and `generateTranscript()` (POST). */
export const VIDEO_TRANSCRIPTION_ROUTE = "/video/:video_id/transcription"
/** `coll.search(query)` (not `namespace: "rtstream"`): the collection's exported videos. */
export const COLLECTION_VIDEO_SEARCH_ROUTE = "/collection/:collection_id/search"

/** `GET /video/{id}?collection_id=` (`coll.getVideo`): the collection the SDK names. */
export const VideoQuery = Schema.Struct({
  collection_id: Schema.optionalKey(Schema.String),
})
export type VideoQuery = typeof VideoQuery.Type

/**
 * `POST /video/{id}/index` (`indexSpokenWords(languageCode?, segmentationType?, force?,
 * callbackUrl?)`): only `spoken_word`; the other fields are accepted and have no effect (the
 * transcript is the server's engine's, in its language and utterances). Audio never transcribed
 * while it recorded is transcribed from its stored segments: the answer is `processing` (202)
 * with `output_url` (`GET /video/{id}/index`) until that is done.
 */
export const VideoIndexRequest = Schema.Struct({
  index_type: Schema.Literals(["spoken_word"]),
  language_code: Schema.optionalKey(Schema.NullOr(Schema.String)),
  segmentation_type: Schema.optionalKey(Schema.NullOr(Schema.String)),
  force: Schema.optionalKey(Schema.NullOr(Schema.Boolean)),
  callback_url: Schema.optionalKey(Schema.NullOr(Schema.String)),
})
export type VideoIndexRequest = typeof VideoIndexRequest.Type

/** The spoken-word index of an export: what its session's transcription stored. */
export const VideoIndexView = Schema.Struct({
  success: Schema.Boolean,
  message: Schema.String,
  video_id: VideoId,
  session_id: SessionId,
  /** The audio channels whose transcript it holds (those mixed into the video and transcribed). */
  channel_ids: Schema.Array(Schema.String),
  /** Final transcript segments inside the video's timeline. */
  segments: Schema.Int,
  /** `active` while a channel's transcription still runs (its last segments may still come), else `stopped`. */
  transcription_status: Schema.Literals(["active", "stopped"]),
  /** The channels transcribed from the recording after the fact (not while it recorded). */
  transcribed_from_recording: Schema.Array(Schema.String),
})
export type VideoIndexView = typeof VideoIndexView.Type

/**
 * `POST /video/{id}/search` (`video.search(query, searchType?, indexType?, resultThreshold?,
 * scoreThreshold?, …)`). Every `search_type` runs the same full-text search; `index_type`
 * `spoken_word` (the SDK's default) searches the transcript, `scene` the video channel's visual
 * indexes.
 */
export const VideoSearchRequest = Schema.Struct({
  query: Schema.String.check(
    Schema.isMaxLength(1000),
    Schema.makeFilter((text: string) => text.trim().length > 0 || "expected a non-empty query"),
  ),
  search_type: Schema.optionalKey(Schema.NullOr(Schema.Literals(["semantic", "keyword", "scene", "llm"]))),
  index_type: Schema.optionalKey(Schema.NullOr(Schema.Literals(["spoken_word", "scene"]))),
  scene_index_id: Schema.optionalKey(Schema.NullOr(SceneIndexId)),
  result_threshold: Schema.optionalKey(
    Schema.NullOr(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000 }))),
  ),
  score_threshold: Schema.optionalKey(
    Schema.NullOr(Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 }))),
  ),
  dynamic_score_percentage: Schema.optionalKey(Schema.NullOr(Schema.Finite)),
  filter: Schema.optionalKey(Schema.NullOr(Schema.Unknown)),
  sort_docs_on: Schema.optionalKey(Schema.NullOr(Schema.String)),
  namespace: Schema.optionalKey(Schema.NullOr(Schema.String)),
})
export type VideoSearchRequest = typeof VideoSearchRequest.Type

/** A shot of the video: `start`/`end` in seconds of the video, and URLs playing that range. */
export const VideoSearchDoc = Schema.Struct({
  start: Schema.Finite,
  end: Schema.Finite,
  text: Schema.String,
  score: Schema.Finite,
  scene_index_id: Schema.NullOr(Schema.String),
  scene_index_name: Schema.NullOr(Schema.String),
  metadata: Schema.Record(Schema.String, Schema.Unknown),
  stream_url: Schema.String,
  player_url: Schema.String,
})
export type VideoSearchDoc = typeof VideoSearchDoc.Type

/** The SDK's `SearchResult`: one result per video, its shots in `docs`, best first. */
export const VideoSearchResults = Schema.Struct({
  results: Schema.Array(
    Schema.Struct({
      video_id: VideoId,
      collection_id: Schema.String,
      title: Schema.String,
      /** Seconds. */
      length: Schema.Finite,
      docs: Schema.Array(VideoSearchDoc),
    }),
  ),
})
export type VideoSearchResults = typeof VideoSearchResults.Type

const Seconds = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))

/**
 * `POST /video/{id}/stream` (`shot.generateStream()`, `video.generateStream(timeline)`):
 * `timeline` ranges in seconds of the video (absent: the whole video); `length` is accepted.
 */
export const VideoStreamRequest = Schema.Struct({
  timeline: Schema.optionalKey(
    Schema.NullOr(
      Schema.Array(Schema.Tuple([Seconds, Seconds])).check(
        Schema.isMinLength(1),
        Schema.isMaxLength(MAX_TIMELINE_RANGES),
      ),
    ),
  ),
  length: Schema.optionalKey(Schema.NullOr(Schema.Finite)),
})
export type VideoStreamRequest = typeof VideoStreamRequest.Type

/** A playable range of an export: the ranges kept (clamped to the video), and their URLs. */
export const VideoStreamView = Schema.Struct({
  video_id: VideoId,
  stream_url: Schema.String,
  player_url: Schema.String,
  timeline: Schema.Array(Schema.Tuple([Schema.Finite, Schema.Finite])),
})
export type VideoStreamView = typeof VideoStreamView.Type

export const COMPILE_ROUTE = "/compile"
/** A compiled playlist (public, like the exports it plays): `?v=<video_id>:<timeline>&v=…`. */
export const COMPILED_PLAYLIST_ROUTE = "/compile/index.m3u8"
/** The player page of a compiled playlist (same query). */
export const COMPILED_PLAYER_ROUTE = "/compile/player"

/**
 * `POST /compile` (the SDK's `SearchResult.compile()`): the shots of a search, one entry per shot
 * as the SDK sends them (`collection_id` is accepted), played in this order as one stream.
 */
export const CompileRequest = Schema.Array(
  Schema.Struct({
    video_id: VideoId,
    collection_id: Schema.optionalKey(Schema.NullOr(Schema.String)),
    shots: Schema.Array(Schema.Tuple([Seconds, Seconds])).check(Schema.isMinLength(1)),
  }),
).check(Schema.isMinLength(1), Schema.isMaxLength(MAX_TIMELINE_RANGES))
export type CompileRequest = typeof CompileRequest.Type

/** A compiled stream: the ranges kept per video (clamped to it), in order, and the URLs playing them. */
export const CompileView = Schema.Struct({
  stream_url: Schema.String,
  player_url: Schema.String,
  parts: Schema.Array(
    Schema.Struct({
      video_id: VideoId,
      timeline: Schema.Array(Schema.Tuple([Schema.Finite, Schema.Finite])),
    }),
  ),
})
export type CompileView = typeof CompileView.Type

/** How `GET /video/{id}/transcription` groups words: `length` words, sentences or seconds a timestamp. */
export const TranscriptSegmenter = Schema.Literals(["word", "sentence", "time"])
export type TranscriptSegmenter = typeof TranscriptSegmenter.Type

/** The largest `length` of a transcript's timestamps (words, sentences or seconds). */
export const MAX_TRANSCRIPT_SEGMENT_LENGTH = 3600

const SecondsFromString = Schema.NumberFromString.check(
  Schema.isFinite(),
  Schema.isGreaterThanOrEqualTo(0, { message: "expected seconds of the video, not negative" }),
)

/**
 * `GET /video/{id}/transcription` (`video.getTranscript(start?, end?, segmenter?, length?,
 * force?)`, `getTranscriptText(start, end)`): the words said within [start, end] (seconds of the
 * video; absent: all of it), grouped by `segmenter` (default `word`) `length` at a time (default
 * 1). `force` is accepted and changes nothing (the transcript is the one stored).
 */
export const VideoTranscriptQuery = Schema.Struct({
  start: Schema.optionalKey(SecondsFromString),
  end: Schema.optionalKey(SecondsFromString),
  segmenter: Schema.optionalKey(TranscriptSegmenter),
  length: Schema.optionalKey(
    Schema.NumberFromString.check(
      Schema.isInt(),
      Schema.isBetween(
        { minimum: 1, maximum: MAX_TRANSCRIPT_SEGMENT_LENGTH },
        { message: `expected an integer from 1 to ${MAX_TRANSCRIPT_SEGMENT_LENGTH}` },
      ),
    ),
  ),
  force: Schema.optionalKey(Schema.Literals(["true", "false"])),
})
export type VideoTranscriptQuery = typeof VideoTranscriptQuery.Type

/**
 * `POST /video/{id}/transcription` (`video.generateTranscript(force?)`): transcribes the video's
 * audio from the recording when it was never transcribed; `force` is accepted and changes nothing.
 */
export const VideoTranscriptionRequest = Schema.Struct({
  force: Schema.optionalKey(Schema.NullOr(Schema.Boolean)),
  language_code: Schema.optionalKey(Schema.NullOr(Schema.String)),
  callback_url: Schema.optionalKey(Schema.NullOr(Schema.String)),
})
export type VideoTranscriptionRequest = typeof VideoTranscriptionRequest.Type

/**
 * A timestamped piece of the transcript: seconds of the video. Its words are in `text` (as
 * VideoDB's API answers) and again in `word` (the name the Node SDK's `Transcript` type reads).
 */
export const TranscriptTimestamp = Schema.Struct({
  start: Schema.Finite,
  end: Schema.Finite,
  text: Schema.String,
  word: Schema.String,
})
export type TranscriptTimestamp = typeof TranscriptTimestamp.Type

/**
 * An export's transcript as VideoDB answers it: `word_timestamps` (the SDK's `getTranscript()`)
 * and the plain `text` (`getTranscriptText()`), with where it comes from.
 */
export const VideoTranscriptView = Schema.Struct({
  video_id: VideoId,
  text: Schema.String,
  word_timestamps: Schema.Array(TranscriptTimestamp),
  segmenter: TranscriptSegmenter,
  length: Schema.Int,
  /** The audio channels whose transcript it is (mixed into the video and transcribed). */
  channel_ids: Schema.Array(Schema.String),
  /** `active` while a channel's transcription still runs (its last words may still come), else `stopped`. */
  transcription_status: Schema.Literals(["active", "stopped"]),
  /** The channels transcribed from the recording after the fact (not while it recorded). */
  transcribed_from_recording: Schema.Array(Schema.String),
})
export type VideoTranscriptView = typeof VideoTranscriptView.Type
