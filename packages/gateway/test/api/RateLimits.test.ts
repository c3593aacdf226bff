/**
 * Rate limits (issue 15): per API key, per client token and per source address, 429 `rate_limited`
 * with `Retry-After`, counted in NATS so that two gateways together admit one limit's worth.
 *
 * The windows are an hour long so that none ends while a test runs (a window starts on the hour).
 */
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startTestGateway, type TestGateway } from "./TestGateway.js"

const HOUR = 3600
const data = (body: Record<string, unknown>) => body.data as Record<string, unknown>

/** Sends `count` requests one after another; their statuses. */
const statuses = async (count: number, send: () => Promise<{ readonly status: number }>) => {
  const out: Array<number> = []
  for (let i = 0; i < count; i++) out.push((await send()).status)
  return out
}

const refusal = async (url: string, token: string | undefined) => {
  const response = await fetch(`${url}/collection/default/capture/session`, {
    headers: token === undefined ? {} : { "x-access-token": token },
  })
  return {
    status: response.status,
    retryAfter: Number(response.headers.get("retry-after")),
    body: (await response.json()) as Record<string, unknown>,
  }
}

describe("rate limits on one gateway", () => {
  let nats: NatsServerHandle
  let api: TestGateway
  beforeAll(async () => {
    nats = await startNatsServer()
    api = await startTestGateway(nats.url, {
      rateLimitWindowSeconds: HOUR,
      rateLimitPerApiKey: 5,
      rateLimitPerClientToken: 3,
      rateLimitPerAddress: 1_000,
    })
  }, 60_000)
  afterAll(async () => {
    await api?.stop()
    await nats?.stop()
  })

  it("refuses an API key's requests past its limit with 429 and Retry-After; another key goes on", async () => {
    const { key } = await api.gateway.accounts.createApiKey(
      (await api.gateway.accounts.firstAccount()).account.id,
      "limited",
    )
    const list = () => api.request("GET", "/collection/default/capture/session", { token: key })
    expect(await statuses(5, list)).toEqual([200, 200, 200, 200, 200])
    const refused = await refusal(api.url, key)
    expect(refused.status).toBe(429)
    expect(refused.body).toMatchObject({
      success: false,
      error_code: "rate_limited",
      field: "x-access-token",
    })
    expect(refused.retryAfter).toBeGreaterThanOrEqual(1)
    expect(refused.retryAfter).toBeLessThanOrEqual(HOUR)
    // The seeded key has its own count.
    expect((await api.request("GET", "/collection/default/capture/session")).status).toBe(200)
  })

  it("refuses a client token's requests past its limit, on the API and on segment uploads", async () => {
    const issued = await api.request("POST", "/capture/session/token", { body: { end_user_id: "u" } })
    const token = data(issued.body).token as string
    const list = () => api.request("GET", "/collection/default/capture/session", { token })
    // The token may not list sessions (403), but each refusal is a request all the same.
    expect(await statuses(3, list)).not.toContain(429)
    expect((await refusal(api.url, token)).status).toBe(429)
    const upload = await fetch(`${api.url}/capture/session/cap-x/channel/mic:default/segment/0`, {
      method: "PUT",
      headers: { "x-access-token": token, "content-type": "video/mp2t" },
      body: new Uint8Array(188),
    })
    expect(upload.status).toBe(429)
    expect(((await upload.json()) as Record<string, unknown>).error_code).toBe("rate_limited")
  })
})

describe("rate limits per source address", () => {
  let nats: NatsServerHandle
  let api: TestGateway
  beforeAll(async () => {
    nats = await startNatsServer()
    api = await startTestGateway(nats.url, { rateLimitWindowSeconds: HOUR, rateLimitPerAddress: 10 })
  }, 60_000)
  afterAll(async () => {
    await api?.stop()
    await nats?.stop()
  })

  it("counts every request of an address, unauthenticated ones too", async () => {
    const anonymous = () => refusal(api.url, undefined)
    const answered = await statuses(12, anonymous)
    // The test gateway's readiness probes came from this address too: a few of the ten are spent.
    const admitted = answered.indexOf(429)
    expect(admitted).toBeGreaterThanOrEqual(7)
    expect(answered.slice(0, admitted).every((status) => status === 401)).toBe(true)
    expect(answered.slice(admitted).every((status) => status === 429)).toBe(true)
    const refused = await refusal(api.url, undefined)
    expect(refused).toMatchObject({ status: 429, body: { error_code: "rate_limited", field: "address" } })
    // A valid key from the same address is refused too: the address is spent.
    expect((await api.request("GET", "/collection/default/capture/session")).status).toBe(429)
  })
})

describe("rate limits behind a trusted proxy", () => {
  let nats: NatsServerHandle
  let api: TestGateway
  beforeAll(async () => {
    nats = await startNatsServer()
    api = await startTestGateway(nats.url, {
      rateLimitWindowSeconds: HOUR,
      rateLimitPerAddress: 3,
      // The test is the proxy: it connects from loopback and says whom it forwards.
      trustedProxies: "127.0.0.0/8, ::1",
    })
  }, 60_000)
  afterAll(async () => {
    await api?.stop()
    await nats?.stop()
  })

  const from = (client: string) => () =>
    fetch(`${api.url}/collection/default/capture/session`, { headers: { "x-forwarded-for": client } })

  it("counts each forwarded client on its own, not the proxy's address for all of them", async () => {
    expect(await statuses(4, from("198.51.100.1"))).toEqual([401, 401, 401, 429])
    expect(await statuses(3, from("198.51.100.2"))).toEqual([401, 401, 401])
    // What a client writes before the proxy's entry does not buy it a new count.
    expect((await from("203.0.113.5, 198.51.100.1")()).status).toBe(429)
  })
})

describe("rate limits over two gateways", () => {
  let nats: NatsServerHandle
  let a: TestGateway
  let b: TestGateway
  const options = {
    rateLimitWindowSeconds: HOUR,
    rateLimitPerApiKey: 10,
    rateLimitPerAddress: 1_000,
    rateLimitSyncMs: 50,
  }
  beforeAll(async () => {
    nats = await startNatsServer()
    a = await startTestGateway(nats.url, options)
    b = await startTestGateway(nats.url, options)
  }, 60_000)
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()])
    await nats?.stop()
  })

  it("admits one limit's worth over both, not one per gateway", async () => {
    const list = (on: TestGateway) => () => on.request("GET", "/collection/default/capture/session")
    expect(await statuses(6, list(a))).toEqual([200, 200, 200, 200, 200, 200])
    // Past one sync interval, a's count is in NATS and b reads it before admitting.
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(await statuses(6, list(b))).toEqual([200, 200, 200, 200, 429, 429])
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect((await list(a)()).status).toBe(429)
  })
})
