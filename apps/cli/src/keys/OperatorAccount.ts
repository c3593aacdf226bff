/**
 * The account an operator command (`keys`, `webhooks`) acts on, and the store it lives in:
 * `--account <id>`, else the deployment's first account (the one `serve` makes on its first start).
 */
import { type Account, AccountStore } from "@capture/gateway"
import { Effect, Option, type Scope } from "effect"
import { Flag } from "effect/cli"
import { type CommandError, describe, unavailable, usage } from "../Exit.js"
import { natsFlag, toolServers } from "../Flags.js"
import { openToolSession, type ToolSession } from "../NatsSession.js"

/** `--account <id>`: optional; the first account when absent. */
export const accountFlag = Flag.String("account").pipe(
  Flag.withDescription("The account to act on (default: the first account)"),
  Flag.optional,
)

/** The flags of every command acting on an account: `--account` and `--nats`. */
export const accountFlags = { account: accountFlag, nats: natsFlag }

/** A tool session with the account store open and the account resolved. */
export interface AccountSession extends ToolSession {
  readonly accounts: AccountStore
  readonly account: Account
}

/** A store call; its failure means NATS trouble (exit 3), never the operator's mistake. */
export const storeCall = <A>(what: string, f: () => Promise<A>): Effect.Effect<A, CommandError> =>
  Effect.tryPromise({ try: f, catch: (error) => unavailable(`cannot ${what}: ${describe(error)}`) })

/**
 * Connects, opens the accounts bucket of the deployment's topology and resolves the account. An
 * unknown `--account` is a usage error (exit 2). Without one, the first account is created when no
 * server has started yet, exactly as the first `serve` would.
 */
export const openAccount = (
  servers: ReadonlyArray<string>,
  accountId: Option.Option<string>,
): Effect.Effect<AccountSession, CommandError, Scope.Scope> =>
  Effect.gen(function* () {
    const session = yield* openToolSession(servers)
    const accounts = yield* Effect.acquireRelease(
      storeCall("open the accounts bucket", () =>
        AccountStore.open(session.nc, session.runtime.topology.options),
      ),
      (accounts) => Effect.sync(() => accounts.close()),
    )
    if (Option.isNone(accountId)) {
      const first = yield* storeCall("read the first account", () => accounts.firstAccount())
      return { ...session, accounts, account: first.account }
    }
    const account = yield* storeCall("read the account", () => accounts.account(accountId.value))
    if (account === undefined) return yield* usage(`account ${accountId.value} not found`)
    return { ...session, accounts, account }
  })

/** `openAccount` for a command's parsed `accountFlags`. */
export const openAccountOf = (input: {
  readonly nats: Option.Option<string>
  readonly account: Option.Option<string>
}): Effect.Effect<AccountSession, CommandError, Scope.Scope> =>
  openAccount(toolServers(input.nats), input.account)

/** Left-aligned columns two spaces apart, the header row first. */
export const formatTable = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((row) => row[i]?.length ?? 0)))
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")
}
