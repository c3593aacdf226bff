/**
 * The `capture` command tree.
 */
import { Command } from "effect/cli"
import { projectionsCommand } from "./projections/ProjectionsCommand.js"
import { replayCommand } from "./replay/ReplayCommand.js"
import { serveCommand } from "./serve/ServeCommand.js"

/** `capture serve | replay | projections`. */
export const capture = Command.make("capture").pipe(
  Command.withDescription("Capture sessions backend: server and operator tools"),
  Command.withSubcommands([serveCommand, replayCommand, projectionsCommand]),
)
