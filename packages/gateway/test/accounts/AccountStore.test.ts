import { createHash } from "node:crypto"
import { newWebhookSecret } from "@capture/protocol"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { jetstream } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { UnreadableAccountRecord } from "../../src/accounts/AccountBucket.js"
import { AccountStore } from "../../src/accounts/AccountStore.js"

let server: NatsServerHandle
let nc: NatsConnection
const stores: Array<AccountStore> = []
let deployments = 0

beforeAll(async () => {
  server = await startNatsServer()
  nc = await connect({ servers: server.url })
})
afterAll(async () => {
  for (const store of stores) store.close()
  await nc?.close()
  await server?.stop()
})

/** A deployment of its own (a fresh prefix); `open` opens one more gateway's store on it. */
const newDeployment = () => {
  const prefix = `acc${++deployments}`
  const lines: Array<string> = []
  const open = async () => {
    const store = await AccountStore.open(nc, { prefix, log: (line) => lines.push(line) })
    stores.push(store)
    return store
  }
  const raw = () => new Kvm(jetstream(nc)).open(`${prefix}_accounts`)
  return { open, raw, lines }
}

const hashOf = (secret: string) => createHash("sha256").update(secret).digest("hex")

describe("AccountStore", () => {
  it("agrees on the first account, its first key and the URL signing key across gateways starting at once", async () => {
    const deployment = newDeployment()
    const gateways = await Promise.all(Array.from({ length: 4 }, () => deployment.open()))
    const firsts = await Promise.all(gateways.map((g) => g.firstAccount()))
    expect(new Set(firsts.map((f) => f.account.id)).size).toBe(1)
    expect(firsts.filter((f) => f.created)).toHaveLength(1)
    expect(await gateways[0]?.accounts()).toHaveLength(1)
    const accountId = firsts[0]?.account.id ?? ""
    const keys = await Promise.all(gateways.map((g) => g.createFirstApiKey(accountId)))
    const [key] = keys.filter((k) => k !== undefined)
    expect(keys.filter((k) => k !== undefined)).toHaveLength(1)
    const another = gateways.at(-1)
    if (another === undefined) throw new Error("no gateway")
    expect(Result.getOrThrow(await another.authenticate(key))).toMatchObject({
      kind: "api_key",
      account_id: accountId,
    })
    const urlKeys = await Promise.all(gateways.map((g) => g.urlSigningKey()))
    expect(new Set(urlKeys.map((k) => k.toString("base64"))).size).toBe(1)
    expect(urlKeys[0]).toHaveLength(32)
  })

  it("makes a new first account when the one meta.first names was removed, once across gateways", async () => {
    const deployment = newDeployment()
    const [one, two] = await Promise.all([deployment.open(), deployment.open()])
    if (one === undefined || two === undefined) throw new Error("no gateway")
    const removed = (await one.firstAccount()).account.id
    await (await deployment.raw()).purge(`account.${removed}`)
    const firsts = await Promise.race([
      Promise.all([one.firstAccount(), two.firstAccount()]),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error("firstAccount hangs")), 10_000)),
    ])
    expect(firsts.filter((f) => f.created)).toHaveLength(1)
    expect(new Set(firsts.map((f) => f.account.id)).size).toBe(1)
    expect(firsts[0]?.account.id).not.toBe(removed)
    expect((await one.accounts()).map((a) => a.id)).toEqual([firsts[0]?.account.id])
  })

  it("signs with the new webhook secret first and the old one until its grace ends", async () => {
    const store = await newDeployment().open()
    const old = newWebhookSecret()
    const account = await store.createAccount("rotating", old)
    expect(await store.webhookSecrets(account.id)).toEqual([old])
    const rotated = await store.rotateWebhookSecret(account.id, { graceSeconds: 60 })
    const current = rotated.webhook_secrets[0]?.secret
    expect(await store.webhookSecrets(account.id)).toEqual([current, old])
    // Without grace the replaced secret stops at once; the older one keeps its own grace.
    const again = await store.rotateWebhookSecret(account.id, { graceSeconds: 0 })
    expect(await store.webhookSecrets(account.id)).toEqual([again.webhook_secrets[0]?.secret, old])
    const ensured = await store.ensureWebhookSecret(account.id, old)
    expect(ensured.webhook_secrets[0]).toMatchObject({ secret: old, expires_at: null })
    expect(await store.ensureWebhookSecret(account.id, old)).toEqual(ensured)
    await expect(store.rotateWebhookSecret("acct-missing")).rejects.toThrow("no account acct-missing")
  })

  it("takes an unreadable credential as unknown and says so, and refuses to guess an unreadable key", async () => {
    const deployment = newDeployment()
    const store = await deployment.open()
    const { account } = await store.firstAccount()
    const kept = await store.createApiKey(account.id, "kept")
    const kv = await deployment.raw()
    const broken = "sk-an-api-key-written-by-a-newer-version"
    await kv.put(`apikey.${hashOf(broken)}`, JSON.stringify({ key_id: 7 }))

    const refused = await store.authenticate(broken)
    expect(Result.isFailure(refused) && refused.failure.error_code).toBe("unauthorized")
    expect((await store.listApiKeys(account.id)).map((k) => k.key_id)).toEqual([kept.record.key_id])
    expect(deployment.lines).toContainEqual(
      expect.stringMatching(
        new RegExp(`apikey\\.${hashOf(broken)} is unreadable: key_id: .*; taken as absent`),
      ),
    )
    // Taken as absent, the deployment key would be created again and lose the race forever.
    await kv.put("meta.url_key", "{not json")
    await expect(store.urlSigningKey()).rejects.toBeInstanceOf(UnreadableAccountRecord)
    await kv.put(`account.${account.id}`, JSON.stringify({ id: account.id }))
    await expect(store.rotateWebhookSecret(account.id)).rejects.toBeInstanceOf(UnreadableAccountRecord)
    expect(await store.webhookSecrets(account.id)).toEqual([])
  })
})
