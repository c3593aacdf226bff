/**
 * Webhook signing secrets, kept on the account: the current one plus rotated ones still in grace,
 * so receivers can switch over while both sign.
 */
import { newWebhookSecret, type WebhookSecret } from "@capture/protocol"
import type { Account, Accounts } from "./Accounts.js"

/** How long a rotated webhook secret keeps signing, so receivers can switch over. */
export const DEFAULT_ROTATION_GRACE_SECONDS = 24 * 60 * 60

export class WebhookSecrets {
  constructor(private readonly accounts: Accounts) {}

  /** Secrets that sign the account's webhooks now: the current one first, then any still in grace. */
  async webhookSecrets(accountId: string): Promise<ReadonlyArray<WebhookSecret>> {
    const account = await this.accounts.account(accountId)
    if (account === undefined) return []
    const now = Date.now()
    return account.webhook_secrets
      .filter((s) => s.expires_at === null || Date.parse(s.expires_at) > now)
      .map((s) => s.secret)
  }

  /** A new current secret; the previous ones keep signing for `graceSeconds`. */
  async rotateWebhookSecret(
    accountId: string,
    options: { readonly graceSeconds?: number; readonly secret?: WebhookSecret } = {},
  ): Promise<Account> {
    return this.accounts.update(accountId, (account) => {
      const now = Date.now()
      const expires = new Date(
        now + (options.graceSeconds ?? DEFAULT_ROTATION_GRACE_SECONDS) * 1000,
      ).toISOString()
      return {
        ...account,
        webhook_secrets: [
          {
            secret: options.secret ?? newWebhookSecret(),
            created_at: new Date(now).toISOString(),
            expires_at: null,
          },
          ...account.webhook_secrets
            .filter((s) => s.expires_at === null || Date.parse(s.expires_at) > now)
            .map((s) => (s.expires_at === null ? { ...s, expires_at: expires } : s)),
        ],
      }
    })
  }

  /** Makes `secret` the account's current secret unless it already is (`CAPTURE_WEBHOOK_SECRET`). */
  async ensureWebhookSecret(accountId: string, secret: WebhookSecret): Promise<Account> {
    const account = await this.accounts.account(accountId)
    if (account?.webhook_secrets[0]?.secret === secret) return account
    return this.rotateWebhookSecret(accountId, { secret })
  }
}
