/**
 * The `capture` command tree.
 */
import { Command } from "effect/cli"
import { keysCommand } from "./keys/KeysCommand.js"
import { mcpCommand } from "./mcp/McpCommand.js"
import { projectionsCommand } from "./projections/ProjectionsCommand.js"
import { channelsCommandLine, recordCommandLine } from "./record/RecordCommand.js"
import { replayCommand } from "./replay/ReplayCommand.js"
import { serveCommand } from "./serve/ServeCommand.js"
import { webhooksCommand } from "./webhooks/WebhooksCommand.js"

/** `capture serve | replay | projections | keys | webhooks | record | channels | mcp`. */
export const capture = Command.make("capture").pipe(
  Command.withDescription("Capture sessions backend: server and operator tools"),
  Command.withSubcommands([
    serveCommand,
    replayCommand,
    projectionsCommand,
    keysCommand,
    webhooksCommand,
    recordCommandLine,
    channelsCommandLine,
    mcpCommand,
  ]),
)
