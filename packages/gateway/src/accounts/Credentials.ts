/**
 * Credentials: API keys (`sk-…`, stored as SHA-256 hashes, shown once) and client tokens (`st-…`,
 * with expiry, optionally bound to an end user), and telling who presents one. Keys and tokens are
 * 160 random bits, so a plain SHA-256 is enough: there is nothing to brute-force.
 */
import { createHash, randomBytes } from "node:crypto"
import { type CaptureError, captureError, MAX_TOKEN_SECONDS, makeIdBody } from "@capture/protocol"
import { KvWatchInclude } from "@nats-io/kv"
import { Result, Schema } from "effect"
import type { AccountBucket } from "./AccountBucket.js"
import { ExpiredRecords } from "./ExpiredRecords.js"

/** An API key as stored (`apikey.<hash of the key>`). */
export const ApiKeyRecord = Schema.Struct({
  key_id: Schema.String,
  account_id: Schema.String,
  name: Schema.String,
  /** The first characters of the key, to recognise it in a list. */
  hint: Schema.String,
  created_at: Schema.String,
  revoked_at: Schema.NullOr(Schema.String),
})
export type ApiKeyRecord = typeof ApiKeyRecord.Type

/** A client token as stored (`token.<hash of the token>`). */
export const ClientTokenRecord = Schema.Struct({
  token_id: Schema.String,
  account_id: Schema.String,
  end_user_id: Schema.NullOr(Schema.String),
  created_at: Schema.String,
  expires_at: Schema.String,
  revoked_at: Schema.NullOr(Schema.String),
  /** The key and tokens that issued it, outermost first: revoking any of them revokes it (absent on old records). */
  issuers: Schema.optionalKey(Schema.Array(Schema.String)),
  /** `websocket`: a token a `websocket_url` carries, which opens a WebSocket and nothing else. */
  scope: Schema.optionalKey(Schema.Literals(["api", "websocket"])),
})
export type ClientTokenRecord = typeof ClientTokenRecord.Type

/** Where a client token's record is, by its id (`tokenid.<token_id>`), to revoke it without the token. */
export const ClientTokenIndex = Schema.Struct({
  account_id: Schema.String,
  /** The key of its record (`token.<hash>`). */
  record_key: Schema.String,
  expires_at: Schema.String,
})
export type ClientTokenIndex = typeof ClientTokenIndex.Type

/** What a client token may do: the API (start, stop, upload, listen), or only open a WebSocket. */
export type TokenScope = "api" | "websocket"

/** Who a request is: an account's API key, or a client token of an account (maybe of one end user). */
export type Principal =
  | { readonly kind: "api_key"; readonly account_id: string; readonly key_id: string }
  | {
      readonly kind: "client_token"
      readonly account_id: string
      readonly token_id: string
      readonly end_user_id: string | null
      readonly expires_at: string
      readonly issuers: ReadonlyArray<string>
      readonly scope: TokenScope
    }

/** The ids of the credentials behind `principal`, outermost first: revoking any one revokes it. */
export const credentialChain = (principal: Principal): ReadonlyArray<string> =>
  principal.kind === "api_key" ? [principal.key_id] : [...principal.issuers, principal.token_id]

const hashOf = (secret: string): string => createHash("sha256").update(secret).digest("hex")
const randomSecret = (prefix: "sk-" | "st-"): string => `${prefix}${randomBytes(20).toString("base64url")}`
const apiKeyKey = (plain: string): string => `apikey.${hashOf(plain)}`

/** How long a verified credential is trusted without asking KV again; the KV watch evicts sooner. */
const CACHE_TTL_MS = 5_000
const CACHE_LIMIT = 10_000

export class Credentials {
  /** Verified credentials by hash. */
  private readonly cache = new Map<string, { readonly principal: Principal; readonly until: number }>()
  private readonly revocationListeners = new Set<(credentialId: string) => void>()
  private watching: { stop(): void } | undefined

  private constructor(
    private readonly bucket: AccountBucket,
    readonly expired: ExpiredRecords,
  ) {}

  /** Starts watching for revocations by other gateways, which evict this one's cache at once. */
  static async open(bucket: AccountBucket, expiry?: { readonly slotMs?: number }): Promise<Credentials> {
    const credentials = new Credentials(bucket, new ExpiredRecords(bucket, expiry?.slotMs))
    await credentials.watchRevocations()
    return credentials
  }

  /** Stops the cache invalidation watch. */
  close(): void {
    this.watching?.stop()
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
    await this.bucket.create(apiKeyKey(plain), record)
    return { key: plain, record }
  }

  /**
   * The first account's first key, for the one gateway that wins the claim, when the account has
   * never had a key (it may have been made by `capture keys list` before any server started).
   * Undefined for every other caller, and once any key exists, revoked or not.
   */
  async createFirstApiKey(accountId: string): Promise<string | undefined> {
    // The claim, once made, answers at once: no listing of every key at each start.
    if (await this.bucket.has("meta.first_key")) return undefined
    if ((await this.listApiKeys(accountId)).length > 0) return undefined
    try {
      await this.bucket.create("meta.first_key", { account_id: accountId })
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
    const existing = await this.bucket.need(ApiKeyRecord, apiKeyKey(plain))
    if (existing !== undefined) return existing
    try {
      return (await this.createApiKey(accountId, name, plain)).record
    } catch {
      // Another gateway seeded it at the same moment.
      const seeded = await this.bucket.need(ApiKeyRecord, apiKeyKey(plain))
      if (seeded === undefined) throw new Error("the seeded API key could not be stored")
      return seeded
    }
  }

  /** The keys of one account (or of all), oldest first. */
  async listApiKeys(accountId?: string): Promise<ReadonlyArray<ApiKeyRecord>> {
    const out: Array<ApiKeyRecord> = []
    for (const key of await this.bucket.keys("apikey.>")) {
      const record = await this.bucket.get(ApiKeyRecord, key)
      if (record !== undefined && (accountId === undefined || record.account_id === accountId))
        out.push(record)
    }
    return out.sort((a, b) => a.created_at.localeCompare(b.created_at))
  }

  /** Revokes a key by id; false when no key has that id. */
  async revokeApiKey(keyId: string): Promise<boolean> {
    for (const key of await this.bucket.keys("apikey.>")) {
      const record = await this.bucket.get(ApiKeyRecord, key)
      if (record?.key_id !== keyId) continue
      if (record.revoked_at === null) {
        await this.bucket.put(key, { ...record, revoked_at: new Date().toISOString() })
      }
      // A key's marker stops the tokens it issued, the longest of which lives MAX_TOKEN_SECONDS.
      await this.markRevoked(keyId, Date.now() + MAX_TOKEN_SECONDS * 1000)
      this.cache.clear()
      return true
    }
    return false
  }

  // --- client tokens ------------------------------------------------------------------------

  async createClientToken(
    accountId: string,
    options: {
      readonly expiresInSeconds: number
      readonly endUserId?: string | undefined
      /** `credentialChain` of the principal issuing it. */
      readonly issuers?: ReadonlyArray<string>
      readonly scope?: TokenScope
    },
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
      issuers: options.issuers ?? [],
      scope: options.scope ?? "api",
    }
    const recordKey = `token.${hashOf(token)}`
    // Expired tokens are refused by their `expires_at`; the KV entry is only bookkeeping.
    await this.bucket.create(recordKey, record)
    const index: ClientTokenIndex = {
      account_id: accountId,
      record_key: recordKey,
      expires_at: record.expires_at,
    }
    await this.bucket.put(`tokenid.${record.token_id}`, index)
    await this.expired.file(`token-${record.token_id}`, record.expires_at, [
      recordKey,
      `tokenid.${record.token_id}`,
    ])
    return { token, record }
  }

  /** Revokes a client token (given as the token itself); false when unknown. */
  async revokeClientToken(token: string): Promise<boolean> {
    return (await this.revokeTokenRecord(`token.${hashOf(token)}`)) !== undefined
  }

  /**
   * Revokes the client token `tokenId` of `accountId` (a WebSocket token, or every token it
   * issued, with it): its record is marked, every gateway refuses it and closes its sockets.
   * Undefined when the account has no such token (an id of another account included).
   */
  async revokeClientTokenById(accountId: string, tokenId: string): Promise<ClientTokenRecord | undefined> {
    if (!/^tok-[A-Za-z0-9_-]{1,64}$/.test(tokenId)) return undefined
    const index = await this.bucket.get(ClientTokenIndex, `tokenid.${tokenId}`)
    if (index === undefined || index.account_id !== accountId) return undefined
    return this.revokeTokenRecord(index.record_key)
  }

  private async revokeTokenRecord(key: string): Promise<ClientTokenRecord | undefined> {
    const record = await this.bucket.get(ClientTokenRecord, key)
    if (record === undefined) return undefined
    const revoked =
      record.revoked_at === null
        ? await this.bucket.update(ClientTokenRecord, key, (current) => ({
            ...current,
            revoked_at: current.revoked_at ?? new Date().toISOString(),
          }))
        : record
    // The WebSocket tokens a token asked for never outlive it.
    await this.markRevoked(record.token_id, Date.parse(record.expires_at))
    this.cache.clear()
    return revoked
  }

  /**
   * A revocation every gateway hears (`revoked.<id>`): the tokens a revoked credential issued
   * stop authenticating, and its WebSockets are closed.
   */
  private async markRevoked(credentialId: string, untilMs: number): Promise<void> {
    const until = new Date(untilMs).toISOString()
    await this.bucket.put(`revoked.${credentialId}`, { revoked_at: new Date().toISOString(), until })
    await this.expired.file(`revoked-${credentialId}`, untilMs, [`revoked.${credentialId}`])
  }

  /** Calls `listener` with the id of every key or token revoked from now on, by any process. */
  onRevoked(listener: (credentialId: string) => void): () => void {
    this.revocationListeners.add(listener)
    return () => this.revocationListeners.delete(listener)
  }

  // --- authentication -----------------------------------------------------------------------

  /**
   * Who presents `credential` (the `x-access-token` header), or why not. A WebSocket token is
   * refused unless `use` is `websocket`.
   */
  async authenticate(
    credential: string | undefined,
    use: TokenScope = "api",
  ): Promise<Result.Result<Principal, CaptureError>> {
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
    if (principal.kind === "client_token" && principal.scope === "websocket" && use !== "websocket") {
      return Result.fail(
        captureError("unauthorized", "a WebSocket token only opens a WebSocket", { field: "x-access-token" }),
      )
    }
    return Result.succeed(principal)
  }

  private async lookup(credential: string, hash: string): Promise<Principal | undefined> {
    let principal: Principal | undefined
    if (credential.startsWith("sk-")) {
      const record = await this.bucket.get(ApiKeyRecord, `apikey.${hash}`)
      if (record !== undefined && record.revoked_at === null) {
        principal = { kind: "api_key", account_id: record.account_id, key_id: record.key_id }
      }
    } else if (credential.startsWith("st-")) {
      const record = await this.bucket.get(ClientTokenRecord, `token.${hash}`)
      const issuers = record?.issuers ?? []
      if (record !== undefined && record.revoked_at === null && !(await this.anyRevoked(issuers))) {
        principal = {
          kind: "client_token",
          account_id: record.account_id,
          token_id: record.token_id,
          end_user_id: record.end_user_id,
          expires_at: record.expires_at,
          issuers,
          scope: record.scope ?? "api",
        }
      }
    }
    if (principal !== undefined) {
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear()
      this.cache.set(hash, { principal, until: Date.now() + CACHE_TTL_MS })
    }
    return principal
  }

  private async anyRevoked(credentialIds: ReadonlyArray<string>): Promise<boolean> {
    for (const id of credentialIds) {
      if (await this.bucket.has(`revoked.${id}`)) return true
    }
    return false
  }

  /**
   * Another gateway revoking a key or token evicts it here at once (the TTL is the fallback), with
   * every token it issued, and tells the `onRevoked` listeners.
   */
  private async watchRevocations(): Promise<void> {
    const updates = await this.bucket.kv.watch({ key: ">", include: KvWatchInclude.UpdatesOnly })
    this.watching = { stop: () => updates.stop() }
    void (async () => {
      for await (const entry of updates) {
        const dot = entry.key.indexOf(".")
        if (dot <= 0) continue
        if (entry.key.startsWith("revoked.") && entry.operation === "PUT") {
          this.cache.clear()
          const credentialId = entry.key.slice(dot + 1)
          for (const listener of this.revocationListeners) listener(credentialId)
        } else {
          this.cache.delete(entry.key.slice(dot + 1))
        }
      }
    })().catch(() => undefined)
  }
}
