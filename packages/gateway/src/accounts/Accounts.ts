/**
 * Accounts: who owns sessions, keys and webhook secrets. The first account is made on the first
 * start of a deployment, by exactly one of the gateways starting at once.
 */
import { isRevisionConflict } from "@capture/jetstream"
import { makeIdBody, newWebhookSecret, WebhookSecret } from "@capture/protocol"
import { Schema } from "effect"
import { type AccountBucket, UnreadableAccountRecord } from "./AccountBucket.js"

/** An account as stored (`account.<id>`). */
export const AccountRecord = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  created_at: Schema.String,
  /** Newest first; a rotated secret stays valid until its `expires_at`. */
  webhook_secrets: Schema.Array(
    Schema.Struct({
      secret: WebhookSecret,
      created_at: Schema.String,
      expires_at: Schema.NullOr(Schema.String),
    }),
  ),
})
export type Account = typeof AccountRecord.Type

/** Which account is the first (`meta.first`). */
const FirstAccount = Schema.Struct({ account_id: Schema.String })

const accountKey = (accountId: string): string => `account.${accountId}`

export class Accounts {
  constructor(private readonly bucket: AccountBucket) {}

  async account(accountId: string): Promise<Account | undefined> {
    return this.bucket.get(AccountRecord, accountKey(accountId))
  }

  /** Every account, oldest first. */
  async accounts(): Promise<ReadonlyArray<Account>> {
    const out: Array<Account> = []
    for (const key of await this.bucket.keys("account.>")) {
      const account = await this.bucket.get(AccountRecord, key)
      if (account !== undefined) out.push(account)
    }
    return out.sort((a, b) => a.created_at.localeCompare(b.created_at))
  }

  async createAccount(name: string, webhookSecret: WebhookSecret = newWebhookSecret()): Promise<Account> {
    const now = new Date().toISOString()
    const account: Account = {
      id: `acct-${makeIdBody()}`,
      name,
      created_at: now,
      webhook_secrets: [{ secret: webhookSecret, created_at: now, expires_at: null }],
    }
    await this.bucket.create(accountKey(account.id), account)
    return account
  }

  /**
   * The first account, created on first start. Many gateways may start at once: the `meta.first`
   * key is created by exactly one of them, and every other one reads the winner's account.
   */
  async firstAccount(): Promise<{ readonly account: Account; readonly created: boolean }> {
    for (;;) {
      const first = await this.bucket.read(FirstAccount, "meta.first")
      // Unreadable records throw: taking them as absent would only lose the race below forever.
      if (first._tag === "Unreadable") throw new UnreadableAccountRecord("meta.first", first.reason)
      if (first._tag === "Readable") {
        const account = await this.bucket.need(AccountRecord, accountKey(first.value.account_id))
        if (account !== undefined) return { account, created: false }
      }
      const account = await this.createAccount("default")
      try {
        if (first._tag === "Absent") await this.bucket.create("meta.first", { account_id: account.id })
        // The first account was removed: a new one takes its place, unless another gateway's did.
        else await this.bucket.replace("meta.first", { account_id: account.id }, first.revision)
        return { account, created: true }
      } catch (error) {
        await this.bucket.purge(accountKey(account.id))
        if (!isRevisionConflict(error)) throw error
      }
    }
  }

  /** Rewrites an account with `change` (compare-and-set); throws when there is no such account. */
  async update(accountId: string, change: (account: Account) => Account): Promise<Account> {
    return this.bucket.update(AccountRecord, accountKey(accountId), change, `account ${accountId}`)
  }
}
