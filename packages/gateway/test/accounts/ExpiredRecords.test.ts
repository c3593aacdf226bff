/**
 * Expired records are purged (issue 15, item 9): client token records (WebSocket tokens too),
 * their id index and revocation markers leave the accounts bucket once nothing needs them, with
 * no delete marker left behind, by any number of gateways at once; live ones stay and still work.
 */
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AccountStore } from "../../src/accounts/AccountStore.js"

let server: NatsServerHandle
let nc: NatsConnection
const stores: Array<AccountStore> = []

beforeAll(async () => {
  server = await startNatsServer()
  nc = await connect({ servers: server.url })
})
afterAll(async () => {
  for (const store of stores) store.close()
  await nc?.close()
  await server?.stop()
})

const SLOT_MS = 1_000

const open = async (prefix: string) => {
  const store = await AccountStore.open(nc, { prefix, expirySlotMs: SLOT_MS })
  stores.push(store)
  return store
}

/** Every key in the bucket, and how many messages its stream holds (delete markers included). */
const contents = async (prefix: string) => {
  const kv = await new Kvm(jetstream(nc)).open(`${prefix}_accounts`)
  const keys: Array<string> = []
  for await (const key of await kv.keys()) keys.push(key)
  const info = await (await jetstreamManager(nc)).streams.info(`KV_${prefix}_accounts`)
  return { keys: keys.sort(), messages: info.state.messages }
}

describe("expired records", () => {
  it("purges expired and revoked tokens and their markers, keeps live ones, on two gateways at once", async () => {
    const prefix = "expiry1"
    const [a, b] = [await open(prefix), await open(prefix)]
    const { account } = await a.firstAccount()
    const { key, record: keyRecord } = await a.createApiKey(account.id, "issuer")
    const short = await a.createClientToken(account.id, { expiresInSeconds: 1, endUserId: "u" })
    const socketToken = await a.createClientToken(account.id, {
      expiresInSeconds: 1,
      issuers: [keyRecord.key_id],
      scope: "websocket",
    })
    const revoked = await a.createClientToken(account.id, { expiresInSeconds: 2, endUserId: "u" })
    expect(await a.revokeClientTokenById(account.id, revoked.record.token_id)).toBeDefined()
    const live = await a.createClientToken(account.id, { expiresInSeconds: 3600, endUserId: "u" })
    const before = await contents(prefix)
    for (const token of [short, socketToken, revoked, live]) {
      expect(before.keys).toContain(`tokenid.${token.record.token_id}`)
    }
    expect(before.keys).toContain(`revoked.${revoked.record.token_id}`)

    // Two gateways purge at once, a few seconds on: both finish, neither undoes the other.
    const later = Date.now() + 4 * SLOT_MS
    await Promise.all([a.purgeExpired(later), b.purgeExpired(later)])

    const after = await contents(prefix)
    for (const token of [short, socketToken, revoked]) {
      expect(after.keys).not.toContain(`tokenid.${token.record.token_id}`)
      expect(after.keys.some((k) => k.includes(token.record.token_id))).toBe(false)
    }
    expect(after.keys).toContain(`tokenid.${live.record.token_id}`)
    expect(after.keys.filter((k) => k.startsWith("token.")).length).toBe(1)
    // Purged with their history: no delete marker is left for each removed key.
    expect(after.messages).toBe(after.keys.length)
    expect(Result.isSuccess(await b.authenticate(live.token))).toBe(true)
    expect(Result.isSuccess(await b.authenticate(key))).toBe(true)
  })

  it("files the records of a deployment written before expiry slots existed, once", async () => {
    const prefix = "expiry2"
    const store = await open(prefix)
    const { account } = await store.firstAccount()
    const old = await store.createClientToken(account.id, { expiresInSeconds: 1 })
    // As an older version left it: no expiry entry, no purge mark.
    const kv = await new Kvm(jetstream(nc)).open(`${prefix}_accounts`)
    for await (const key of await kv.keys("expiry.>")) await kv.purge(key)
    const later = Date.now() + 4 * SLOT_MS
    await store.purgeExpired(later)
    const after = await contents(prefix)
    expect(after.keys.some((k) => k.includes(old.record.token_id))).toBe(false)
    expect(after.keys.filter((k) => k.startsWith("token."))).toEqual([])
  })
})
