/**
 * Accounts and their credentials, in a KV bucket every gateway shares: API keys (`sk-…`, stored as
 * SHA-256 hashes, shown once), client tokens (`st-…`, with expiry, optionally bound to an end
 * user), collections, and webhook signing secrets (current plus rotated ones still in grace).
 * Keys and tokens are 160 random bits, so a plain SHA-256 is enough: there is nothing to brute-force.
 */
import { createHash, randomBytes } from "node:crypto"
import { createRacing, isRevisionConflict } from "@capture/jetstream"
import {
  type CollectionId,
  captureError,
  DEFAULT_COLLECTION,
  makeIdBody,
  newWebhookSecret,
  type WebhookSecret,
} from "@capture/protocol"
import { jetstream } from "@nats-io/jetstream"
import { type KV, Kvm, KvWatchInclude } from "@nats-io/kv"
import type { NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"

export interface Account {
  readonly id: string
  readonly name: string
  readonly created_at: string
  /** Newest first; a rotated secret stays valid until its `expires_at`. */
  readonly webhook_secrets: ReadonlyArray<{
    readonly secret: WebhookSecret
    readonly created_at: string
    readonly expires_at: string | null
  }>
}

export interface ApiKeyRecord {
  readonly key_id: string
  readonly account_id: string
  readonly name: string
  /** The first characters of the key, to recognise it in a list. */
  readonly hint: string
  readonly created_at: string
  readonly revoked_at: string | null
}

export interface ClientTokenRecord {
  readonly token_id: string
  readonly account_id: string
  readonly end_user_id: string | null
  readonly created_at: string
  readonly expires_at: string
  readonly revoked_at: string | null
}

export interface Collection {
  readonly id: CollectionId
  readonly account_id: string
  readonly name: string
  readonly description: string
}

/** Who a request is: an account's API key, or a client token of an account (maybe of one end user). */
export type Principal =
  | { readonly kind: "api_key"; readonly account_id: string; readonly key_id: string }
  | {
      readonly kind: "client_token"
      readonly account_id: string
      readonly token_id: string
      readonly end_user_id: string | null
      readonly expires_at: string
    }

const hashOf = (secret: string): string => createHash("sha256").update(secret).digest("hex")
const randomSecret = (prefix: "sk-" | "st-"): string => `${prefix}${randomBytes(20).toString("base64url")}`
const codec = {
  encode: (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value)),
  decode: <A>(bytes: Uint8Array): A => JSON.parse(new TextDecoder().decode(bytes)) as A,
}

/** How long a verified credential is trusted without asking KV again; the KV watch evicts sooner. */
const CACHE_TTL_MS = 5_000
const CACHE_LIMIT = 10_000
/** How long a rotated webhook secret keeps signing, so receivers can switch over. */
export const DEFAULT_ROTATION_GRACE_SECONDS = 24 * 60 * 60

export interface AccountStoreOptions {
  readonly replicas?: number
  readonly prefix?: string
}

export class AccountStore {
  private readonly cache = new Map<string, { readonly principal: Principal; readonly until: number }>()
  private watching: { stop(): void } | undefined

  private constructor(readonly kv: KV) {}

  static async open(nc: NatsConnection, options: AccountStoreOptions = {}): Promise<AccountStore> {
    const kv = await createRacing(() =>
      new Kvm(jetstream(nc)).create(`${options.prefix ?? "capture"}_accounts`, {
        replicas: options.replicas ?? 1,
        history: 1,
      }),
    )
    const store = new AccountStore(kv)
    await store.watchRevocations()
    return store
  }

  /** Stops the cache invalidation watch. */
  close(): void {
    this.watching?.stop()
  }

  // --- accounts -----------------------------------------------------------------------------

  async account(accountId: string): Promise<Account | undefined> {
    return this.getJson<Account>(`account.${accountId}`)
  }

  async accounts(): Promise<ReadonlyArray<Account>> {
    const out: Array<Account> = []
    for (const key of await this.keys("account.>")) {
      const account = await this.getJson<Account>(key)
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
    await this.kv.create(`account.${account.id}`, codec.encode(account))
    return account
  }

  /**
   * The first account, created on first start. Many gateways may start at once: the `meta.first`
   * key is created by exactly one of them, and every other one reads the winner's account.
   */
  async firstAccount(): Promise<{ readonly account: Account; readonly created: boolean }> {
    const existing = await this.getJson<{ account_id: string }>("meta.first")
    if (existing !== undefined) {
      const account = await this.account(existing.account_id)
      if (account !== undefined) return { account, created: false }
    }
    const account = await this.createAccount("default")
    try {
      await this.kv.create("meta.first", codec.encode({ account_id: account.id }))
      return { account, created: true }
    } catch {
      await this.kv.purge(`account.${account.id}`)
      return this.firstAccount()
    }
  }

  // --- API keys -----------------------------------------------------------------------------

  /** A new key for the account: the plain key is returned here and never stored. */
  async createApiKey(
    accountId: string,
    name = "default",
    plain: string = randomSecret("sk-"),
  ): Promise<{ readonly key: string; readonly record: ApiKeyRecord }> {
    const record: ApiKeyRecord = {
      key_id: `key-${makeIdBody()}`,
      account_id: accountId,
      name,
      hint: `${plain.slice(0, 7)}…`,
      created_at: new Date().toISOString(),
      revoked_at: null,
    }
    await this.kv.create(`apikey.${hashOf(plain)}`, codec.encode(record))
    return { key: plain, record }
  }

  /**
   * The first account's first key, for the one gateway that wins the claim, when the account has
   * never had a key (it may have been made by `capture keys list` before any server started).
   * Undefined for every other caller, and once any key exists, revoked or not.
   */
  async createFirstApiKey(accountId: string): Promise<string | undefined> {
    // The claim, once made, answers at once: no listing of every key at each start.
    if ((await this.kv.get("meta.first_key"))?.operation === "PUT") return undefined
    if ((await this.listApiKeys(accountId)).length > 0) return undefined
    try {
      await this.kv.create("meta.first_key", codec.encode({ account_id: accountId }))
    } catch {
      return undefined
    }
    return (await this.createApiKey(accountId, "first key")).key
  }

  /**
   * Makes sure `plain` is a key of the account (a seeded key, e.g. `CAPTURE_API_KEY`), creating
   * it the first time. A revoked key stays revoked: a revocation outlives the restart that would
   * otherwise bring the seed back. The record says which it is.
   */
  async ensureApiKey(accountId: string, plain: string, name = "seeded"): Promise<ApiKeyRecord> {
    const existing = await this.getJson<ApiKeyRecord>(`apikey.${hashOf(plain)}`)
    if (existing !== undefined) return existing
    try {
      return (await this.createApiKey(accountId, name, plain)).record
    } catch {
      // Another gateway seeded it at the same moment.
      const seeded = await this.getJson<ApiKeyRecord>(`apikey.${hashOf(plain)}`)
      if (seeded === undefined) throw new Error("the seeded API key could not be stored")
      return seeded
    }
  }

  async listApiKeys(accountId?: string): Promise<ReadonlyArray<ApiKeyRecord>> {
    const out: Array<ApiKeyRecord> = []
    for (const key of await this.keys("apikey.>")) {
      const record = await this.getJson<ApiKeyRecord>(key)
      if (record !== undefined && (accountId === undefined || record.account_id === accountId))
        out.push(record)
    }
    return out.sort((a, b) => a.created_at.localeCompare(b.created_at))
  }

  /** Revokes a key by id; false when no key has that id. */
  async revokeApiKey(keyId: string): Promise<boolean> {
    for (const key of await this.keys("apikey.>")) {
      const record = await this.getJson<ApiKeyRecord>(key)
      if (record?.key_id !== keyId) continue
      if (record.revoked_at === null) {
        await this.kv.put(key, codec.encode({ ...record, revoked_at: new Date().toISOString() }))
      }
      this.cache.clear()
      return true
    }
    return false
  }

  // --- client tokens ------------------------------------------------------------------------

  async createClientToken(
    accountId: string,
    options: { readonly expiresInSeconds: number; readonly endUserId?: string | undefined },
  ): Promise<{ readonly token: string; readonly record: ClientTokenRecord }> {
    const now = Date.now()
    const token = randomSecret("st-")
    const record: ClientTokenRecord = {
      token_id: `tok-${makeIdBody(now)}`,
      account_id: accountId,
      end_user_id: options.endUserId ?? null,
      created_at: new Date(now).toISOString(),
      expires_at: new Date(now + options.expiresInSeconds * 1000).toISOString(),
      revoked_at: null,
    }
    // Expired tokens are refused by their `expires_at`; the KV entry is only bookkeeping.
    await this.kv.create(`token.${hashOf(token)}`, codec.encode(record))
    return { token, record }
  }

  /** Revokes a client token (given as the token itself); false when unknown. */
  async revokeClientToken(token: string): Promise<boolean> {
    const key = `token.${hashOf(token)}`
    const record = await this.getJson<ClientTokenRecord>(key)
    if (record === undefined) return false
    await this.kv.put(key, codec.encode({ ...record, revoked_at: new Date().toISOString() }))
    this.cache.delete(hashOf(token))
    return true
  }

  // --- authentication -----------------------------------------------------------------------

  /** Who presents `credential` (the `x-access-token` header), or why not. */
  async authenticate(credential: string | undefined) {
    if (credential === undefined || credential === "") {
      return Result.fail(
        captureError("unauthorized", "missing x-access-token header", { field: "x-access-token" }),
      )
    }
    const hash = hashOf(credential)
    const now = Date.now()
    const cached = this.cache.get(hash)
    const principal =
      cached !== undefined && cached.until > now ? cached.principal : await this.lookup(credential, hash)
    if (principal === undefined) {
      return Result.fail(
        captureError("unauthorized", "invalid or revoked access token", { field: "x-access-token" }),
      )
    }
    if (principal.kind === "client_token" && Date.parse(principal.expires_at) <= now) {
      return Result.fail(
        captureError("token_expired", "the client token has expired", { field: "x-access-token" }),
      )
    }
    return Result.succeed(principal)
  }

  private async lookup(credential: string, hash: string): Promise<Principal | undefined> {
    let principal: Principal | undefined
    if (credential.startsWith("sk-")) {
      const record = await this.getJson<ApiKeyRecord>(`apikey.${hash}`)
      if (record !== undefined && record.revoked_at === null) {
        principal = { kind: "api_key", account_id: record.account_id, key_id: record.key_id }
      }
    } else if (credential.startsWith("st-")) {
      const record = await this.getJson<ClientTokenRecord>(`token.${hash}`)
      if (record !== undefined && record.revoked_at === null) {
        principal = {
          kind: "client_token",
          account_id: record.account_id,
          token_id: record.token_id,
          end_user_id: record.end_user_id,
          expires_at: record.expires_at,
        }
      }
    }
    if (principal !== undefined) {
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear()
      this.cache.set(hash, { principal, until: Date.now() + CACHE_TTL_MS })
    }
    return principal
  }

  /** Another gateway revoking a key or token evicts it here at once (the TTL is the fallback). */
  private async watchRevocations(): Promise<void> {
    const updates = await this.kv.watch({ key: ">", include: KvWatchInclude.UpdatesOnly })
    this.watching = { stop: () => updates.stop() }
    void (async () => {
      for await (const entry of updates) {
        const dot = entry.key.indexOf(".")
        if (dot > 0) this.cache.delete(entry.key.slice(dot + 1))
      }
    })().catch(() => undefined)
  }

  // --- webhook secrets ----------------------------------------------------------------------

  /** Secrets that sign the account's webhooks now: the current one first, then any still in grace. */
  async webhookSecrets(accountId: string): Promise<ReadonlyArray<WebhookSecret>> {
    const account = await this.account(accountId)
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
    return this.updateAccount(accountId, (account) => {
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
    const account = await this.account(accountId)
    if (account?.webhook_secrets[0]?.secret === secret) return account
    return this.rotateWebhookSecret(accountId, { secret })
  }

  // --- collections --------------------------------------------------------------------------

  /** A collection of the account; `default` always exists. */
  async collection(accountId: string, collectionId: string): Promise<Collection | undefined> {
    if (collectionId === DEFAULT_COLLECTION) {
      return {
        id: DEFAULT_COLLECTION,
        account_id: accountId,
        name: "default",
        description: "Default collection",
      }
    }
    return this.getJson<Collection>(`collection.${accountId}.${collectionId}`)
  }

  async createCollection(accountId: string, name: string, description = ""): Promise<Collection> {
    const collection: Collection = {
      id: `c-${makeIdBody()}` as CollectionId,
      account_id: accountId,
      name,
      description,
    }
    await this.kv.create(`collection.${accountId}.${collection.id}`, codec.encode(collection))
    return collection
  }

  // --- URL signing ---------------------------------------------------------------------------

  /**
   * The deployment's key for signed URLs (live playback links). Created once; every gateway
   * reads the same one, so a link one instance hands out works on all of them.
   */
  async urlSigningKey(): Promise<Buffer> {
    const existing = await this.getJson<{ key: string }>("meta.url_key")
    if (existing !== undefined) return Buffer.from(existing.key, "base64")
    try {
      await this.kv.create("meta.url_key", codec.encode({ key: randomBytes(32).toString("base64") }))
    } catch {
      // Another gateway created it first.
    }
    return this.urlSigningKey()
  }

  // --- KV helpers ---------------------------------------------------------------------------

  private async updateAccount(accountId: string, change: (account: Account) => Account): Promise<Account> {
    for (;;) {
      const entry = await this.kv.get(`account.${accountId}`)
      if (entry === null || entry.operation !== "PUT") throw new Error(`no account ${accountId}`)
      const next = change(codec.decode<Account>(entry.value))
      try {
        await this.kv.update(`account.${accountId}`, codec.encode(next), entry.revision)
        return next
      } catch (error) {
        // Lost a race with another writer: read again.
        if (!isRevisionConflict(error)) throw error
      }
    }
  }

  private async getJson<A>(key: string): Promise<A | undefined> {
    const entry = await this.kv.get(key)
    return entry === null || entry.operation !== "PUT" ? undefined : codec.decode<A>(entry.value)
  }

  private async keys(filter: string): Promise<ReadonlyArray<string>> {
    const out: Array<string> = []
    for await (const key of await this.kv.keys(filter)) out.push(key)
    return out
  }
}
