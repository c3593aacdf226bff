#!/usr/bin/env node
/**
 * Entry point of the `capture` command (dist/main.js).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Effect } from "effect"
import { Command } from "effect/cli"
import { capture } from "./Capture.js"
import { report, teardown } from "./Exit.js"

const VERSION = "0.1.0"

Command.run(capture, { version: VERSION }).pipe(
  Effect.tapCause((cause) => Effect.sync(() => report(cause))),
  Effect.provide(NodeServices.layer),
  NodeRuntime.runMain({ disableErrorReporting: true, teardown }),
)
