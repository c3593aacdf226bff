/**
 * The recorder's CLI commands, as plain async functions with typed options: `apps/cli` parses its
 * flags and calls them (`capture record`, `capture channels`).
 */
export { parseDuration } from "../Duration.js"
export { type ListChannelsOptions, listChannelsCommand } from "./ListChannelsCommand.js"
export {
  parseChannelList,
  type RecordOptions,
  type RecordSummary,
  recordCommand,
} from "./RecordCommand.js"
export { formatBytes, type LastError, progressLine, summaryLines } from "./RecordProgress.js"
