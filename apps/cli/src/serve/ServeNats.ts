/**
 * The server's NATS connection: to the embedded server, or to `NATS_URL`. It reconnects forever
 * (the server outlives NATS restarts) and is drained on shutdown, so in-flight publishes and acks
 * reach the server before the process exits; a drain that cannot finish (NATS gone) is cut short.
 */
import { coalesceWrites } from "@capture/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Data, Effect, Option, type Scope } from "effect"
import { describe } from "../Exit.js"
import { log } from "../Log.js"

/** The first connection could not be made. */
export class NatsConnectError extends Data.TaggedError("NatsConnectError")<{ readonly message: string }> {}

/** The live connection and whether it is currently connected (for readiness). */
export interface ServeNats {
  readonly nc: NatsConnection
  readonly servers: ReadonlyArray<string>
  /** False between a disconnect and the reconnect. */
  readonly connected: () => boolean
}

/** Connects for the enclosing scope; drains when it closes, closing instead after `drainTimeoutMs`. */
export const serveNats = (
  servers: ReadonlyArray<string>,
  drainTimeoutMs: number,
): Effect.Effect<ServeNats, NatsConnectError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        // noAsyncTraces: no stack captured per request; it costs more than the rest of a command.
        const nc = await connect({
          servers: [...servers],
          name: "capture-serve",
          maxReconnectAttempts: -1,
          noAsyncTraces: true,
        })
        // One socket write per event-loop turn, not one per microtask drain (see CoalescedWrites).
        coalesceWrites(nc)
        let connected = true
        void (async () => {
          for await (const status of nc.status()) {
            if (status.type === "disconnect") {
              connected = false
              log(`nats disconnected from ${status.server}; reconnecting`)
            } else if (status.type === "reconnect") {
              connected = true
              log(`nats reconnected to ${status.server}`)
            }
          }
        })()
        return { nc, servers, connected: () => connected }
      },
      catch: (error) =>
        new NatsConnectError({
          message: `cannot connect to NATS at ${servers.join(",")}: ${describe(error)}`,
        }),
    }),
    ({ nc }) =>
      Effect.gen(function* () {
        log("draining nats connection")
        const drained = yield* Effect.promise(() =>
          nc.drain().then(
            () => true,
            () => false,
          ),
        ).pipe(Effect.timeoutOption(drainTimeoutMs))
        if (!Option.getOrElse(drained, () => false)) {
          log(`nats connection did not drain within ${drainTimeoutMs} ms; closing it`)
          yield* Effect.promise(() => nc.close()).pipe(Effect.timeoutOption(1_000))
        }
        log("nats connection closed")
      }),
  )
