/**
 * `capture replay <session-id> [--until <seq>] [--json]` and `capture replay --verify [--json]`.
 */

import { AiStore } from "@capture/ai"
import type { SessionContext } from "@capture/session-actor"
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { describe, failed, unavailable, usage } from "../Exit.js"
import { jsonFlag, natsFlag, toolServers } from "../Flags.js"
import { openToolSession } from "../NatsSession.js"
import { formatAiReplay, replayAi } from "./AiReplay.js"
import { formatFailure, formatStep, type ReplayResult, type ReplayStep, replaySession } from "./Replay.js"
import { verifyAll } from "./Verify.js"

const json = (value: unknown): string => JSON.stringify(value, null, 2)

const replayOne = (
  servers: ReadonlyArray<string>,
  sessionId: string,
  until: number | undefined,
  asJson: boolean,
) =>
  Effect.gen(function* () {
    const { runtime } = yield* openToolSession(servers)
    let previous: SessionContext | undefined
    const print = (step: ReplayStep): void => {
      process.stdout.write(`${formatStep(step, previous)}\n`)
      previous = step.state.context
    }
    const result: ReplayResult = yield* Effect.tryPromise({
      try: () =>
        replaySession(runtime.events, sessionId, {
          ...(until === undefined ? {} : { until }),
          ...(asJson ? {} : { onStep: print }),
        }),
      catch: (error) => unavailable(`cannot read ${sessionId}: ${describe(error)}`),
    })
    if (result.events.length === 0 && result.error === null) {
      return yield* usage(
        `session ${sessionId} not found (no events on ${runtime.topology.eventSubject(sessionId)})`,
      )
    }
    // The AI results of the session's rtstreams are part of its history.
    const ai = yield* Effect.tryPromise({
      try: async () => {
        const store = await AiStore.open(runtime.topology.nc, runtime.topology.options)
        try {
          return await replayAi(store, result.final.context.rtstreams)
        } finally {
          store.close()
        }
      },
      catch: (error) => unavailable(`cannot read the AI results of ${sessionId}: ${describe(error)}`),
    })
    if (asJson) {
      yield* Console.log(json({ ...result, ai }))
    } else {
      for (const rtstream of ai)
        for (const line of formatAiReplay(rtstream)) process.stdout.write(`${line}\n`)
      const final = result.final
      yield* Console.log(
        `${sessionId}: ${result.events.length} event(s) replayed; status ${final.status} at #${final.sequence}` +
          (until !== undefined && final.sequence >= until ? ` (--until ${until})` : ""),
      )
    }
    if (result.error !== null) {
      return yield* failed(`${sessionId}: cannot replay ${formatFailure(result.error)}`)
    }
  })

const verify = (servers: ReadonlyArray<string>, asJson: boolean) =>
  Effect.gen(function* () {
    const { runtime } = yield* openToolSession(servers)
    const report = yield* Effect.tryPromise({
      try: () =>
        verifyAll(runtime.events, (failure) => {
          if (!asJson) process.stdout.write(`FAIL ${failure.session_id} ${formatFailure(failure)}\n`)
        }),
      catch: (error) => unavailable(`cannot read the event stream: ${describe(error)}`),
    })
    const summary = `verified ${report.verified} sessions, ${report.failed} failed (${report.events} events)`
    yield* Console.log(asJson ? json(report) : summary)
    if (report.failed > 0) return yield* failed(summary)
  })

/** The `replay` command. */
export const replayCommand = Command.make(
  "replay",
  {
    sessionId: Argument.String("session-id").pipe(
      Argument.withDescription("The session to replay (omit with --verify)"),
      Argument.optional,
    ),
    until: Flag.Int("until").pipe(
      Flag.withDescription("Stop after this event sequence and show the state as of it"),
      Flag.optional,
    ),
    json: jsonFlag,
    verify: Flag.Boolean("verify").pipe(
      Flag.withDescription("Replay every stored session and report each history the code cannot reproduce"),
      Flag.withDefault(false),
    ),
    nats: natsFlag,
  },
  (input) => {
    const servers = toolServers(input.nats)
    if (input.verify) {
      if (Option.isSome(input.sessionId) || Option.isSome(input.until)) {
        return Effect.fail(usage("--verify checks every session: it takes no session id and no --until"))
      }
      return Effect.scoped(verify(servers, input.json))
    }
    if (Option.isNone(input.sessionId)) return Effect.fail(usage("replay needs a session id (or --verify)"))
    return Effect.scoped(
      replayOne(servers, input.sessionId.value, Option.getOrUndefined(input.until), input.json),
    )
  },
).pipe(
  Command.withDescription(
    "Replay a session's stored events through the current machine, printing the state after each; or verify every session",
  ),
)
