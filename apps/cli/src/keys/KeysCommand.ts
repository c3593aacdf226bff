/**
 * `capture keys create | list | revoke`: an account's API keys, and revoking its client tokens. A
 * key is shown once, when it is created; the store keeps only its SHA-256 hash and a hint (its
 * first characters).
 */
import type { ApiKeyRecord } from "@capture/gateway"
import { Console, Effect } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { usage } from "../Exit.js"
import { jsonFlag } from "../Flags.js"
import { accountFlags, formatTable, openAccountOf, storeCall } from "./OperatorAccount.js"

const json = (value: unknown): string => JSON.stringify(value, null, 2)

const create = Command.make(
  "create",
  {
    name: Flag.String("name").pipe(
      Flag.withDescription("A label for the key, shown by `keys list` (default: default)"),
      Flag.withDefault("default"),
    ),
    json: jsonFlag,
    ...accountFlags,
  },
  (input) =>
    Effect.scoped(
      Effect.gen(function* () {
        const { accounts, account } = yield* openAccountOf(input)
        const { key, record } = yield* storeCall("store the key", () =>
          accounts.createApiKey(account.id, input.name),
        )
        if (input.json) {
          yield* Console.log(json({ ...record, key }))
          return
        }
        yield* Console.log(`API key ${record.key_id} ("${record.name}") created for account ${account.id}:`)
        yield* Console.log(key)
        yield* Console.log("Keep it now: only its hash is stored, it cannot be shown again.")
      }),
    ),
).pipe(Command.withDescription("Create an API key and print it, once"))

const revokedText = (record: ApiKeyRecord): string => record.revoked_at ?? "-"

const list = Command.make("list", { json: jsonFlag, ...accountFlags }, (input) =>
  Effect.scoped(
    Effect.gen(function* () {
      const { accounts, account } = yield* openAccountOf(input)
      const keys = yield* storeCall("list the keys", () => accounts.listApiKeys(account.id))
      if (input.json) {
        yield* Console.log(json({ account_id: account.id, keys }))
        return
      }
      if (keys.length === 0) {
        yield* Console.log(`account ${account.id} has no API keys`)
        return
      }
      yield* Console.log(
        formatTable([
          ["ID", "NAME", "HINT", "CREATED", "REVOKED"],
          ...keys.map((k) => [k.key_id, k.name, k.hint, k.created_at, revokedText(k)]),
        ]),
      )
    }),
  ),
).pipe(Command.withDescription("List the account's API keys: id, name, hint, created, revoked"))

const revoke = Command.make(
  "revoke",
  {
    keyId: Argument.String("id").pipe(
      Argument.withDescription(
        "The key (key-…, see keys list) or client token (tok-…, the token_id it was issued with) to revoke",
      ),
    ),
    ...accountFlags,
  },
  (input) =>
    Effect.scoped(
      Effect.gen(function* () {
        const { accounts, account } = yield* openAccountOf(input)
        if (input.keyId.startsWith("tok-")) {
          const token = yield* storeCall("revoke the client token", () =>
            accounts.revokeClientTokenById(account.id, input.keyId),
          )
          if (token === undefined)
            return yield* usage(`client token ${input.keyId} not found in account ${account.id}`)
          const user = token.end_user_id === null ? "" : ` of end user ${token.end_user_id}`
          yield* Console.log(`revoked ${token.token_id}${user} at ${token.revoked_at}`)
          return
        }
        // Looked up in the account first: `revokeApiKey` alone would reach any account's key.
        const keys = yield* storeCall("list the keys", () => accounts.listApiKeys(account.id))
        const record = keys.find((k) => k.key_id === input.keyId)
        if (record === undefined)
          return yield* usage(`API key ${input.keyId} not found in account ${account.id}`)
        if (record.revoked_at !== null) {
          yield* Console.log(`${record.key_id} was already revoked at ${record.revoked_at}`)
          return
        }
        const revoked = yield* storeCall("revoke the key", () => accounts.revokeApiKey(record.key_id))
        if (!revoked) return yield* usage(`API key ${input.keyId} not found in account ${account.id}`)
        yield* Console.log(`revoked ${record.key_id} ("${record.name}", ${record.hint})`)
      }),
    ),
).pipe(
  Command.withDescription(
    "Revoke an API key or a client token; running servers refuse it and close its WebSockets within seconds (exit 2: unknown id)",
  ),
)

/** The `keys` command group. */
export const keysCommand = Command.make("keys").pipe(
  Command.withDescription("Manage an account's API keys (x-access-token sk-…) and revoke its client tokens"),
  Command.withSubcommands([create, list, revoke]),
)
