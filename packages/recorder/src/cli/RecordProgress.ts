/**
 * What `capture record` shows while it records and when it is done: one progress line (elapsed
 * time; per channel the segments uploaded, those spooled and waiting, and the bytes sent; the
 * upload rate; retries; the last error) and a final summary, a line per channel. Pure formatting,
 * so a test reads exactly what a person sees.
 */
import type { UploadStats } from "../CaptureClient.js"
import { formatElapsed } from "../Duration.js"

/** `1.2 MB`-style sizes. */
export const formatBytes = (bytes: number): string => {
  if (bytes < 1_000) return `${bytes} B`
  if (bytes < 1_000_000) return `${(bytes / 1_000).toFixed(1)} kB`
  if (bytes < 1_000_000_000) return `${(bytes / 1_000_000).toFixed(1)} MB`
  return `${(bytes / 1_000_000_000).toFixed(2)} GB`
}

/** The last recording error, as `channel#index: message`. */
export interface LastError {
  readonly where: string
  readonly message: string
  readonly count: number
}

/** One channel's part of the line: `display:1 12 up 1 spooled 1.9 MB` (spooled: waiting in the spool for upload). */
const channelPart = (id: string, channel: UploadStats["channels"][string]): string =>
  `${id} ${channel.uploaded} up${channel.pending > 0 ? ` ${channel.pending} spooled` : ""} ${formatBytes(channel.bytes)}`

/** The live progress line (no newline). */
export const progressLine = (
  elapsedMs: number,
  stats: UploadStats,
  bytesPerSecond: number,
  lastError: LastError | undefined,
): string =>
  [
    `● ${formatElapsed(elapsedMs)}`,
    ...Object.entries(stats.channels).map(([id, channel]) => channelPart(id, channel)),
    `${formatBytes(Math.round(bytesPerSecond))}/s`,
    ...(stats.retries > 0 ? [`retries ${stats.retries}`] : []),
    ...(lastError === undefined ? [] : [`last error ${lastError.where}: ${lastError.message}`]),
  ].join("  ")

/** The summary printed at the end, a line per channel. */
export const summaryLines = (
  elapsedMs: number,
  stats: UploadStats,
  lastError: LastError | undefined,
): ReadonlyArray<string> => {
  const ids = Object.keys(stats.channels)
  const width = Math.max(0, ...ids.map((id) => id.length))
  return [
    `done in ${formatElapsed(elapsedMs)}: ${stats.uploadedSegments} segments (${formatBytes(stats.uploadedBytes)}) uploaded` +
      (stats.pendingSegments > 0 ? `, ${stats.pendingSegments} left in the spool` : "") +
      (stats.retries > 0 ? `, ${stats.retries} retries` : ""),
    ...ids.map((id) => {
      const channel = stats.channels[id] ?? { uploaded: 0, pending: 0, bytes: 0 }
      return (
        `  ${id.padEnd(width)}  ${channel.uploaded} segments  ${formatBytes(channel.bytes)}` +
        (channel.pending > 0 ? `  ${channel.pending} left in the spool` : "")
      )
    }),
    ...(lastError === undefined
      ? []
      : [
          `  ${lastError.count} recording error${lastError.count === 1 ? "" : "s"}, the last ${lastError.where}: ${lastError.message}`,
        ]),
  ]
}
