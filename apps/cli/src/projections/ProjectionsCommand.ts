/**
 * `capture projections rebuild`: drops the read model and re-derives it (and the durable timers)
 * from the event stream, e.g. after a projection bug is fixed or the bucket was lost.
 */
import { rebuildProjections, UnappliableEvent, UnreadableEvent } from "@capture/session-actor"
import { Console, Effect } from "effect"
import { Command } from "effect/cli"
import { describe, failed, unavailable } from "../Exit.js"
import { natsFlag, toolServers } from "../Flags.js"
import { openToolSession } from "../NatsSession.js"

const rebuild = Command.make("rebuild", { nats: natsFlag }, ({ nats }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const { runtime } = yield* openToolSession(toolServers(nats))
      const started = Date.now()
      const sessionIds = yield* Effect.tryPromise({
        try: () => runtime.events.sessionIds(),
        catch: (error) => unavailable(`cannot list sessions: ${describe(error)}`),
      })
      const count = yield* Effect.tryPromise({
        try: () => rebuildProjections(runtime.host, runtime.readModel, runtime.timers, sessionIds),
        catch: (error) =>
          error instanceof UnreadableEvent || error instanceof UnappliableEvent
            ? failed(
                `rebuild stopped: ${error.message}; run \`capture replay --verify\` to list such histories`,
              )
            : unavailable(`rebuild failed: ${describe(error)}`),
      })
      yield* Console.log(`rebuilt ${count} sessions in ${Date.now() - started} ms`)
    }),
  ),
).pipe(Command.withDescription("Drop and rebuild the sessions read model and timers from the event stream"))

/** The `projections` command group. */
export const projectionsCommand = Command.make("projections").pipe(
  Command.withDescription("Maintain the projections (read model, timers) derived from the event stream"),
  Command.withSubcommands([rebuild]),
)
