/** The seven statuses a capture session moves through. */
import { Schema } from "effect"

/** created → starting → active → stopping → stopped → exported; failed from any non-final state. */
export const SessionStatus = Schema.Literals([
  "created",
  "starting",
  "active",
  "stopping",
  "stopped",
  "exported",
  "failed",
])
export type SessionStatus = typeof SessionStatus.Type

/** Per-video-channel export status. */
export const ExportStatus = Schema.Literals(["exporting", "exported", "failed"])
export type ExportStatus = typeof ExportStatus.Type

/**
 * Whether a channel's real-time stream is live: `connected` while its session captures (active,
 * stopping), `stopped` once the session has ended (stopped, exported, failed). VideoDB's SDK
 * reads the same two values (`RTStream.status`).
 */
export const RtstreamStatus = Schema.Literals(["connected", "stopped"])
export type RtstreamStatus = typeof RtstreamStatus.Type
