/**
 * What a request's handler learns that its access log line should carry: the account it acted
 * for, known only once its credential was checked, deep inside the route. The server's access log
 * provides a fresh `RequestNotes` per request and reads it once the request is answered.
 */
import { Context, Effect } from "effect"

/** Filled in by the handler as it learns. */
export interface RequestNotes {
  account_id: string | undefined
}

/** This request's notes; `undefined` where no access log asked for them (a test's server). */
export const CurrentRequestNotes = Context.Reference<RequestNotes | undefined>(
  "@capture/gateway/CurrentRequestNotes",
  { defaultValue: () => undefined },
)

/** Notes the account a request acts for. */
export const noteAccount = (accountId: string): Effect.Effect<void> =>
  Effect.gen(function* () {
    const notes = yield* CurrentRequestNotes
    if (notes !== undefined) notes.account_id = accountId
  })
