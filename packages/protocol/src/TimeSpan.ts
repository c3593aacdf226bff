/**
 * A span of the recorder's clock: the wall-clock time (ms since the epoch) its segments are dated
 * by (`x-segment-start-ms`). Paused time travels as spans: from the session to the muxer in
 * `ExportRequested`, and back to clients in the export's metadata.
 */
import { Schema } from "effect"

/**
 * A span of the recorder's clock (ms since the epoch), start inclusive, end exclusive; `end_ms`
 * null: still open when the session stopped (it runs to the end of the recording).
 */
export const TimeSpan = Schema.Struct({
  start_ms: Schema.Int,
  end_ms: Schema.NullOr(Schema.Int),
})
export type TimeSpan = typeof TimeSpan.Type
