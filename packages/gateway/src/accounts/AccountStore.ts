/**
 * The accounts bucket every gateway shares, as one object for the routes and the CLI: accounts
 * (`Accounts`), API keys and client tokens (`Credentials`), collections (`Collections`), webhook
 * signing secrets (`WebhookSecrets`) and the URL signing key (`UrlSigningKey`). Each concept lives
 * in its own file; this facade only opens them on one bucket and hands calls through.
 */
import type { WebhookSecret } from "@capture/protocol"
import type { NatsConnection } from "@nats-io/transport-node"
import { AccountBucket, type AccountBucketOptions } from "./AccountBucket.js"
import { type Account, Accounts } from "./Accounts.js"
import { type Collection, Collections } from "./Collections.js"
import { type ApiKeyRecord, type ClientTokenRecord, Credentials } from "./Credentials.js"
import { urlSigningKey } from "./UrlSigningKey.js"
import { WebhookSecrets } from "./WebhookSecrets.js"

export type { Account } from "./Accounts.js"
export type { Collection } from "./Collections.js"
export type { ApiKeyRecord, ClientTokenRecord, Principal, TokenScope } from "./Credentials.js"
export { credentialChain } from "./Credentials.js"
export { DEFAULT_ROTATION_GRACE_SECONDS } from "./WebhookSecrets.js"

export interface AccountStoreOptions extends AccountBucketOptions {
  /** Width of an expiry slot (ms): expired tokens and markers are purged within this. */
  readonly expirySlotMs?: number | undefined
}

export class AccountStore {
  private readonly accountRecords: Accounts
  private readonly collections: Collections
  private readonly secrets: WebhookSecrets

  private constructor(
    private readonly bucket: AccountBucket,
    private readonly credentials: Credentials,
  ) {
    this.accountRecords = new Accounts(bucket)
    this.collections = new Collections(bucket)
    this.secrets = new WebhookSecrets(this.accountRecords)
  }

  static async open(nc: NatsConnection, options: AccountStoreOptions = {}): Promise<AccountStore> {
    const bucket = await AccountBucket.open(nc, options)
    return new AccountStore(
      bucket,
      await Credentials.open(
        bucket,
        options.expirySlotMs === undefined ? {} : { slotMs: options.expirySlotMs },
      ),
    )
  }

  /** Stops the cache invalidation watch. */
  close(): void {
    this.credentials.close()
  }

  // --- accounts -----------------------------------------------------------------------------

  account(accountId: string): Promise<Account | undefined> {
    return this.accountRecords.account(accountId)
  }

  accounts(): Promise<ReadonlyArray<Account>> {
    return this.accountRecords.accounts()
  }

  createAccount(name: string, webhookSecret?: WebhookSecret): Promise<Account> {
    return this.accountRecords.createAccount(name, webhookSecret)
  }

  firstAccount(): ReturnType<Accounts["firstAccount"]> {
    return this.accountRecords.firstAccount()
  }

  // --- API keys and client tokens -----------------------------------------------------------

  createApiKey(...args: Parameters<Credentials["createApiKey"]>): ReturnType<Credentials["createApiKey"]> {
    return this.credentials.createApiKey(...args)
  }

  createFirstApiKey(accountId: string): Promise<string | undefined> {
    return this.credentials.createFirstApiKey(accountId)
  }

  ensureApiKey(...args: Parameters<Credentials["ensureApiKey"]>): Promise<ApiKeyRecord> {
    return this.credentials.ensureApiKey(...args)
  }

  listApiKeys(accountId?: string): Promise<ReadonlyArray<ApiKeyRecord>> {
    return this.credentials.listApiKeys(accountId)
  }

  revokeApiKey(keyId: string): Promise<boolean> {
    return this.credentials.revokeApiKey(keyId)
  }

  createClientToken(
    ...args: Parameters<Credentials["createClientToken"]>
  ): ReturnType<Credentials["createClientToken"]> {
    return this.credentials.createClientToken(...args)
  }

  revokeClientToken(token: string): Promise<boolean> {
    return this.credentials.revokeClientToken(token)
  }

  revokeClientTokenById(accountId: string, tokenId: string): Promise<ClientTokenRecord | undefined> {
    return this.credentials.revokeClientTokenById(accountId, tokenId)
  }

  /** Who presents `credential` (the `x-access-token` header), or why not (see `Credentials`). */
  authenticate(...args: Parameters<Credentials["authenticate"]>): ReturnType<Credentials["authenticate"]> {
    return this.credentials.authenticate(...args)
  }

  /** Calls `listener` with the id of every key or token revoked from now on, by any gateway. */
  onRevoked(listener: (credentialId: string) => void): () => void {
    return this.credentials.onRevoked(listener)
  }

  /** Purges the expired client tokens and revocation markers that are due (safe on every gateway at once). */
  purgeExpired(now?: number): Promise<{ readonly purged: number }> {
    return this.credentials.expired.purgeDue(now)
  }

  // --- webhook secrets ----------------------------------------------------------------------

  webhookSecrets(accountId: string): Promise<ReadonlyArray<WebhookSecret>> {
    return this.secrets.webhookSecrets(accountId)
  }

  rotateWebhookSecret(...args: Parameters<WebhookSecrets["rotateWebhookSecret"]>): Promise<Account> {
    return this.secrets.rotateWebhookSecret(...args)
  }

  ensureWebhookSecret(accountId: string, secret: WebhookSecret): Promise<Account> {
    return this.secrets.ensureWebhookSecret(accountId, secret)
  }

  // --- collections --------------------------------------------------------------------------

  collection(accountId: string, collectionId: string): Promise<Collection | undefined> {
    return this.collections.collection(accountId, collectionId)
  }

  createCollection(accountId: string, name: string, description?: string): Promise<Collection> {
    return this.collections.createCollection(accountId, name, description)
  }

  // --- URL signing --------------------------------------------------------------------------

  /** The deployment's key for signed URLs (live playback links), the same on every gateway. */
  urlSigningKey(): Promise<Buffer> {
    return urlSigningKey(this.bucket)
  }
}
