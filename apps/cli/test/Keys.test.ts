import { getFreePort, type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killIfRunning, runCli, type ServeProcess, startServe } from "./cli.js"

let nats: NatsServerHandle
let server: ServeProcess | undefined
let base: string

beforeAll(async () => {
  nats = await startNatsServer()
  const port = await getFreePort()
  // The CLI and serve share one NATS: what the CLI writes, the running gateway sees.
  server = startServe(["--port", String(port)], { NATS_URL: nats.url })
  await server.waitFor(/\[capture\] ready/)
  base = `http://127.0.0.1:${port}`
})
afterAll(async () => {
  await killIfRunning(server)
  await nats?.stop()
})

const capture = (...args: ReadonlyArray<string>) => runCli([...args, "--nats", nats.url])

const collection = (key: string) =>
  fetch(`${base}/collection/default`, { headers: { "x-access-token": key } })

interface KeyView {
  readonly key_id: string
  readonly name: string
  readonly hint: string
  readonly revoked_at: string | null
}

const listed = async (): Promise<ReadonlyArray<KeyView>> => {
  const result = await capture("keys", "list", "--json")
  expect(result.code).toBe(0)
  return JSON.parse(result.stdout).keys
}

describe("capture keys", () => {
  it("creates a key shown once, lists it by its hint, and a running serve refuses it once revoked", async () => {
    const created = await capture("keys", "create", "--name", "ci")
    expect(created.code).toBe(0)
    const key = created.stdout.match(/^sk-[A-Za-z0-9_-]+$/m)?.[0]
    const keyId = created.stdout.match(/\bkey-[0-9A-Z]+\b/)?.[0]
    expect(key).toBeDefined()
    expect(keyId).toBeDefined()
    if (key === undefined || keyId === undefined) return

    const table = await capture("keys", "list")
    expect(table.code).toBe(0)
    expect(table.stdout.split("\n")[0]).toMatch(/^ID\s+NAME\s+HINT\s+CREATED\s+REVOKED$/)
    const row = table.stdout.split("\n").find((line) => line.startsWith(keyId))
    expect(row?.split(/\s+/)).toEqual([keyId, "ci", `${key.slice(0, 7)}…`, expect.any(String), "-"])
    expect(table.stdout).not.toContain(key)
    const json = await capture("keys", "list", "--json")
    expect(json.stdout).not.toContain(key)
    expect((await listed()).find((k) => k.key_id === keyId)).toMatchObject({
      name: "ci",
      hint: `${key.slice(0, 7)}…`,
      revoked_at: null,
    })

    const accepted = await collection(key)
    expect(accepted.status).toBe(200)
    expect(await accepted.json()).toMatchObject({ success: true, data: { id: "default" } })

    const revoked = await capture("keys", "revoke", keyId)
    expect(revoked.code).toBe(0)
    expect(revoked.stdout).toContain(`revoked ${keyId}`)
    // The gateway trusted the key a moment ago (cached for 5 s): the KV watch must evict it sooner.
    await expect.poll(async () => (await collection(key)).status, { timeout: 3_000, interval: 100 }).toBe(401)
    expect(await (await collection(key)).json()).toMatchObject({ success: false, error_code: "unauthorized" })
    expect((await listed()).find((k) => k.key_id === keyId)?.revoked_at).toEqual(expect.any(String))

    const again = await capture("keys", "revoke", keyId)
    expect(again.code).toBe(0)
    expect(again.stdout).toContain("already revoked")
  }, 90_000)

  it("keeps a revoked CAPTURE_API_KEY revoked when serve starts again with it", async () => {
    const seed = "sk-seeded-key-for-the-revocation-test"
    const port = await getFreePort()
    const seededBase = `http://127.0.0.1:${port}`
    const seededCollection = (key: string) =>
      fetch(`${seededBase}/collection/default`, { headers: { "x-access-token": key } })
    const first = startServe(["--port", String(port)], { NATS_URL: nats.url, CAPTURE_API_KEY: seed })
    try {
      await first.waitFor(/\[capture\] ready/)
      expect((await seededCollection(seed)).status).toBe(200)
      const keyId = (await listed()).find(
        (k) => k.hint === `${seed.slice(0, 7)}…` && k.name === "seeded",
      )?.key_id
      expect(keyId).toBeDefined()
      expect((await capture("keys", "revoke", keyId ?? "")).code).toBe(0)
    } finally {
      await killIfRunning(first)
    }

    const second = startServe(["--port", String(port)], { NATS_URL: nats.url, CAPTURE_API_KEY: seed })
    try {
      await second.waitFor(/\[capture\] ready/)
      expect(second.output()).toMatch(
        /CAPTURE_API_KEY names key key-[0-9A-Z]+, revoked at .*: it stays revoked/,
      )
      expect((await seededCollection(seed)).status).toBe(401)
    } finally {
      await killIfRunning(second)
    }
  }, 90_000)

  it("prints a first key when `keys list` ran before any server (and made the account)", async () => {
    const fresh = await startNatsServer()
    const listing = await runCli(["keys", "list", "--json", "--nats", fresh.url])
    expect(listing.code).toBe(0)
    expect(JSON.parse(listing.stdout).keys).toEqual([])
    const port = await getFreePort()
    const serve = startServe(["--port", String(port)], { NATS_URL: fresh.url })
    try {
      await serve.waitFor(/\[capture\] ready/)
      const key = serve.output().match(/first start: created an API key .*: (sk-[A-Za-z0-9_-]+)/)?.[1]
      expect(key, serve.output()).toBeDefined()
      const response = await fetch(`http://127.0.0.1:${port}/collection/default`, {
        headers: { "x-access-token": key ?? "" },
      })
      expect(response.status).toBe(200)
    } finally {
      await killIfRunning(serve)
      await fresh.stop()
    }
  })

  it("exits 2 for a key id or an account it does not know", async () => {
    const unknownKey = await capture("keys", "revoke", "key-NOSUCHKEY")
    expect(unknownKey.code).toBe(2)
    expect(unknownKey.stderr).toMatch(/^capture: API key key-NOSUCHKEY not found/)
    expect(unknownKey.stderr).not.toContain("    at ")

    const unknownAccount = await capture("keys", "list", "--account", "acct-NOSUCHACCOUNT")
    expect(unknownAccount.code).toBe(2)
    expect(unknownAccount.stderr).toContain("account acct-NOSUCHACCOUNT not found")
  })
})
