/**
 * The rtstream transcription routes (VideoDB's `rtstream.startTranscript`, `stopTranscript`,
 * `getTranscript`): `POST /rtstream/{id}/transcription` and `GET /rtstream/{id}/transcription`.
 */
import { Schema } from "effect"
import { RtstreamId } from "./Ids.js"

const ConnectionId = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(128))

/**
 * `POST /rtstream/{id}/transcription`. `engine` is a server engine (`local`, `openai`), `default`,
 * or a name another service uses (VideoDB's SDK sends `assemblyai` unless told otherwise): those
 * mean the server's default. Anything else is refused (`unknown_engine`).
 */
export const TranscriptionRequest = Schema.Struct({
  action: Schema.Literals(["start", "stop"]),
  engine: Schema.optionalKey(Schema.NullOr(Schema.String.check(Schema.isMaxLength(64)))),
  ws_connection_id: Schema.optionalKey(Schema.NullOr(ConnectionId)),
  mode: Schema.optionalKey(Schema.NullOr(Schema.Literals(["graceful", "force"]))),
})
export type TranscriptionRequest = typeof TranscriptionRequest.Type

/** Where an rtstream's transcription stands. */
export const TranscriptionStatus = Schema.Literals(["inactive", "active", "stopped"])
export type TranscriptionStatus = typeof TranscriptionStatus.Type

/** The answer to start and stop. */
export const TranscriptionView = Schema.Struct({
  rtstream_id: RtstreamId,
  status: TranscriptionStatus,
  engine: Schema.NullOr(Schema.String),
  ws_connection_id: Schema.NullOr(Schema.String),
})
export type TranscriptionView = typeof TranscriptionView.Type

/** The largest `page_size` (VideoDB's limit). */
export const MAX_TRANSCRIPT_PAGE_SIZE = 1000

const IntFromString = (minimum: number, maximum: number, what: string) =>
  Schema.NumberFromString.check(
    Schema.isInt(),
    Schema.isBetween({ minimum, maximum }, { message: `expected ${what}` }),
  )
/** Epoch milliseconds (or seconds: values below 10^11 are taken as seconds, as SDKs send them). */
const TimeFromString = Schema.NumberFromString.check(
  Schema.isFinite(),
  Schema.isGreaterThanOrEqualTo(0, { message: "expected a time in epoch ms (or seconds), not negative" }),
)

/** `GET /rtstream/{id}/transcription` query. */
export const TranscriptQuery = Schema.Struct({
  page: Schema.optionalKey(IntFromString(1, 1_000_000, "a page number from 1")),
  page_size: Schema.optionalKey(
    IntFromString(1, MAX_TRANSCRIPT_PAGE_SIZE, `an integer from 1 to ${MAX_TRANSCRIPT_PAGE_SIZE}`),
  ),
  /** Only segments overlapping [start, end]. */
  start: Schema.optionalKey(TimeFromString),
  end: Schema.optionalKey(TimeFromString),
  /** Only segments that end after this (poll for newer ones with the last `end` seen). */
  since: Schema.optionalKey(TimeFromString),
  engine: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(64))),
  /** Include interim segments (`is_final: false`) too; default false. */
  include_interim: Schema.optionalKey(Schema.Literals(["true", "false"])),
})
export type TranscriptQuery = typeof TranscriptQuery.Type

/** One transcript segment as the API lists it. */
export const TranscriptSegmentView = Schema.Struct({
  text: Schema.String,
  start: Schema.Finite,
  end: Schema.Finite,
  is_final: Schema.Boolean,
  utterance: Schema.Int,
  engine: Schema.String,
})
export type TranscriptSegmentView = typeof TranscriptSegmentView.Type

/** A page of an rtstream's transcript, oldest first. */
export const TranscriptPage = Schema.Struct({
  rtstream_id: RtstreamId,
  status: TranscriptionStatus,
  segments: Schema.Array(TranscriptSegmentView),
  page: Schema.Int,
  page_size: Schema.Int,
  /** The next page's number, null on the last. */
  next_page: Schema.NullOr(Schema.Int),
  total: Schema.Int,
})
export type TranscriptPage = typeof TranscriptPage.Type
