/**
 * A session's history as the API reports it (`GET /collection/{cid}/capture/session/{id}/history`):
 * every stored event, in order, with the state after it — what `capture replay --json` prints.
 */
import { Schema } from "effect"
import { SessionId } from "./Ids.js"

/** The session's state after an event: its status and the whole folded context. */
export const HistoryState = Schema.Struct({
  status: Schema.String,
  context: Schema.Record(Schema.String, Schema.Unknown),
})

/** One stored event and the state after it. */
export const HistoryStep = Schema.Struct({
  /** The session's own event sequence: 1, 2, … */
  sequence: Schema.Int,
  /** Where the event sits in the event stream. */
  stream_sequence: Schema.Int,
  time: Schema.String,
  type: Schema.String,
  data: Schema.Unknown,
  state: HistoryState,
})
export type HistoryStep = typeof HistoryStep.Type

/** Where a history stops being reproducible by this server's code, and why. */
export const HistoryFailure = Schema.Struct({
  sequence: Schema.NullOr(Schema.Int),
  stream_sequence: Schema.Int,
  reason: Schema.String,
})

/** A session's history: its events in order, and the failure that cut it short, if any. */
export const SessionHistory = Schema.Struct({
  session_id: SessionId,
  events: Schema.Array(HistoryStep),
  error: Schema.NullOr(HistoryFailure),
})
export type SessionHistory = typeof SessionHistory.Type
