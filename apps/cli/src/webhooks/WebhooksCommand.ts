/**
 * `capture webhooks secret [--rotate]` (an account's signing secret) and `capture webhooks list
 * --session <id>` (a session's deliveries from the delivery log, with every attempt).
 */
import { AlertDeliveryLog, DeliveryLog } from "@capture/gateway"
import { SessionId, type WebhookDelivery } from "@capture/protocol"
import { Console, Effect, Option, Schema } from "effect"
import { Command, Flag } from "effect/cli"
import { describe, failed, unavailable, usage } from "../Exit.js"
import { jsonFlag, natsFlag, parseDuration, toolServers } from "../Flags.js"
import { accountFlags, openAccountOf, storeCall } from "../keys/OperatorAccount.js"
import { openToolSession } from "../NatsSession.js"

const json = (value: unknown): string => JSON.stringify(value, null, 2)

/** A grace period in ms; `0` retires the old secret at once (say, after a leak). */
const parseGrace = (input: string): number =>
  /^\s*0+\s*(ms|s|m|h)?\s*$/.test(input) ? 0 : parseDuration(input)

const secret = Command.make(
  "secret",
  {
    rotate: Flag.Boolean("rotate").pipe(
      Flag.withDescription("Make a new current secret; the old one keeps signing for --grace"),
      Flag.withDefault(false),
    ),
    grace: Flag.String("grace").pipe(
      Flag.withDescription(
        "With --rotate: how long the old secret keeps signing (default 24h; 0: not at all)",
      ),
      Flag.mapTryCatch(parseGrace, (error) => (error instanceof Error ? error.message : String(error))),
      Flag.optional,
    ),
    json: jsonFlag,
    ...accountFlags,
  },
  (input) =>
    Effect.scoped(
      Effect.gen(function* () {
        if (!input.rotate && Option.isSome(input.grace)) {
          return yield* usage("--grace only applies with --rotate")
        }
        const session = yield* openAccountOf(input)
        const graceMs = Option.getOrElse(input.grace, () => 24 * 3_600_000)
        const account = input.rotate
          ? yield* storeCall("rotate the secret", () =>
              session.accounts.rotateWebhookSecret(session.account.id, { graceSeconds: graceMs / 1000 }),
            )
          : session.account
        const now = Date.now()
        const active = account.webhook_secrets.filter(
          (s) => s.expires_at === null || Date.parse(s.expires_at) > now,
        )
        const current = active[0]
        if (current === undefined) return yield* failed(`account ${account.id} has no signing secret`)
        if (input.json) {
          yield* Console.log(json({ account_id: account.id, secrets: active }))
          return
        }
        // stdout is the secret alone, for `$(capture webhooks secret)`; the rest goes to stderr.
        yield* Console.log(current.secret)
        if (input.rotate) {
          const previous = active.slice(1).map((s) => `until ${s.expires_at}`)
          yield* Console.error(
            previous.length === 0
              ? `rotated the signing secret of ${account.id}; no previous secret signs any more`
              : `rotated the signing secret of ${account.id}; previous secrets keep signing ${previous.join(", ")}`,
          )
        }
      }),
    ),
).pipe(Command.withDescription("Print the account's webhook signing secret (whsec_…), or rotate it"))

const isSessionId = Schema.is(SessionId)

const attemptLine = (attempt: WebhookDelivery["attempts"][number]): string =>
  [
    `    ${attempt.attempt}`,
    attempt.at,
    attempt.status_code === null ? "-" : String(attempt.status_code),
    `${attempt.latency_ms} ms`,
    ...(attempt.error === null ? [] : [attempt.error]),
  ].join("  ")

const deliveryLines = (delivery: WebhookDelivery): ReadonlyArray<string> => [
  `#${delivery.sequence} ${delivery.event}  ${delivery.status}  ${delivery.event_id}  ${delivery.url}`,
  ...delivery.attempts.map(attemptLine),
  ...(delivery.next_attempt_at === null ? [] : [`    next attempt ${delivery.next_attempt_at}`]),
]

const summary = (sessionId: string, deliveries: ReadonlyArray<WebhookDelivery>): string => {
  const count = (status: WebhookDelivery["status"]) => deliveries.filter((d) => d.status === status).length
  const failedAttempts = deliveries.reduce((n, d) => n + d.attempts.filter((a) => a.error !== null).length, 0)
  const noun = deliveries.length === 1 ? "delivery" : "deliveries"
  return (
    `${sessionId}: ${deliveries.length} ${noun}, ${count("delivered")} delivered, ${count("pending")} pending, ` +
    `${count("failed")} failed; ${failedAttempts} failed attempts`
  )
}

const list = Command.make(
  "list",
  {
    session: Flag.String("session").pipe(
      Flag.withDescription("The session (cap-…) whose deliveries to show (required)"),
      Flag.optional,
    ),
    json: jsonFlag,
    nats: natsFlag,
  },
  (input) =>
    Effect.scoped(
      Effect.gen(function* () {
        if (Option.isNone(input.session)) return yield* usage("webhooks list needs --session <session-id>")
        const sessionId = input.session.value
        if (!isSessionId(sessionId)) return yield* usage(`"${sessionId}" is not a session id (cap-…)`)
        const { runtime } = yield* openToolSession(toolServers(input.nats))
        const loaded = yield* Effect.tryPromise({
          try: () => runtime.host.load(sessionId),
          catch: (error) => unavailable(`cannot read ${sessionId}: ${describe(error)}`),
        })
        if (loaded.state.value === "none") return yield* usage(`session ${sessionId} not found`)
        const log = yield* storeCall("open the delivery log", () => DeliveryLog.open(runtime.topology))
        const deliveries = yield* storeCall("read the delivery log", () => log.list(sessionId))
        if (input.json) {
          const alerts = yield* storeCall("open the alert delivery log", () =>
            AlertDeliveryLog.open(runtime.topology.nc, runtime.topology.options),
          )
          const alert_deliveries = yield* storeCall("read the alert delivery log", () =>
            alerts.list(sessionId),
          )
          yield* Console.log(json({ session_id: sessionId, deliveries, alert_deliveries }))
          return
        }
        for (const delivery of deliveries) yield* Console.log(deliveryLines(delivery).join("\n"))
        yield* Console.log(
          deliveries.length === 0 && loaded.state.context.callback_url === null
            ? `${sessionId}: no webhook deliveries (the session has no callback_url)`
            : summary(sessionId, deliveries),
        )
      }),
    ),
).pipe(Command.withDescription("List a session's webhook deliveries: status, every attempt, next attempt"))

/** The `webhooks` command group. */
export const webhooksCommand = Command.make("webhooks").pipe(
  Command.withDescription("Webhook signing secrets and delivery history"),
  Command.withSubcommands([secret, list]),
)
