/**
 * A NATS connection and a worker-less session runtime for a one-shot tool (`replay`,
 * `projections`), opened for the duration of an effect and closed after it.
 */
import { type SessionRuntime, startSessionRuntime } from "@capture/session-actor"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Effect, type Scope } from "effect"
import { type CommandError, describe, unavailable } from "./Exit.js"

/** What a tool works with. */
export interface ToolSession {
  readonly nc: NatsConnection
  readonly runtime: SessionRuntime
}

/**
 * Connects to `servers` and opens the session runtime without workers: a tool must not fire timers
 * or project events as a side effect of reading.
 */
export const openToolSession = (
  servers: ReadonlyArray<string>,
): Effect.Effect<ToolSession, CommandError, Scope.Scope> =>
  Effect.gen(function* () {
    const nc = yield* Effect.acquireRelease(
      Effect.tryPromise({
        // A tool fails fast: no reconnect loop when the server is not there.
        try: () => connect({ servers: [...servers], name: "capture-cli", timeout: 5_000 }),
        catch: (error) => unavailable(`cannot connect to NATS at ${servers.join(",")}: ${describe(error)}`),
      }),
      (nc) => Effect.promise(() => nc.close().catch(() => undefined)),
    )
    const runtime = yield* Effect.tryPromise({
      try: () => startSessionRuntime(nc, { workers: false }),
      catch: (error) => unavailable(`cannot open the capture stream and buckets: ${describe(error)}`),
    })
    return { nc, runtime }
  })
