import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { refuseEveryName, startTestGateway, TEST_API_KEY, type TestGateway } from "./TestGateway.js"

let nats: NatsServerHandle
let api: TestGateway
let sessionId: string
/** Callback URL hosts the gateway asked about: refused here, never sent to DNS. */
const askedNames = new Set<string>()

beforeAll(async () => {
  nats = await startNatsServer()
  api = await startTestGateway(nats.url, {
    webhookResolve: (hostname) => {
      askedNames.add(hostname)
      return refuseEveryName(hostname)
    },
  })
  const created = await api.request("POST", "/collection/default/capture/session", {
    body: { end_user_id: "fuzz" },
  })
  sessionId = (created.body.data as { id: string }).id
}, 60_000)
afterAll(async () => {
  await api?.stop()
  await nats?.stop()
})

/** Values of every JSON kind, including the shapes the API expects with wrong contents. */
const jsonValue = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.record(
    {
      end_user_id: fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.constant("")),
      callback_url: fc.oneof(fc.webUrl(), fc.string(), fc.constant("http://169.254.169.254/"), fc.integer()),
      metadata: fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant(null)),
      session_id: fc.oneof(fc.constant("SESSION"), fc.string(), fc.constant("cap-0")),
      channels: fc.oneof(
        fc.array(
          fc.record(
            {
              channel_id: fc.oneof(
                fc.constantFrom(
                  "mic:default",
                  "display:1",
                  "display:2",
                  "system_audio:default",
                  "screen:1",
                  "x:1",
                  "",
                ),
                fc.string(),
              ),
              type: fc.oneof(fc.constantFrom("audio", "video", "text"), fc.integer()),
              store: fc.oneof(fc.boolean(), fc.string()),
              is_primary: fc.oneof(fc.boolean(), fc.constant(null)),
            },
            { requiredKeys: [] },
          ),
          { maxLength: 5 },
        ),
        fc.jsonValue({ maxDepth: 1 }),
      ),
      primary_video_channel_id: fc.oneof(fc.string(), fc.constant("display:9")),
      expires_in: fc.oneof(fc.integer(), fc.double(), fc.string()),
      video_channel_id: fc.oneof(fc.string(), fc.constant("display:1")),
    },
    { requiredKeys: [] },
  ),
)

const body = fc.oneof(
  jsonValue.map((value) => JSON.stringify(value)),
  fc.string({ maxLength: 200 }),
  fc.constantFrom("{", "[1,", "null", "", "\u0000", '{"end_user_id": "\\ud800"}'),
)

const path = fc.oneof(
  fc.constantFrom(
    "/collection/default/capture/session",
    "/collection/default/capture/session/SESSION",
    "/collection/default/capture/session/SESSION/export",
    "/collection/c-unknown/capture/session",
    "/collection/default",
    "/collection/default/websocket",
    "/capture/session/token",
    "/capture/session/start",
    "/capture/session/SESSION",
    "/capture/session/SESSION/stop",
    "/capture/session/SESSION/webhooks",
    "/collection/default/capture/session?limit=abc&status=nope&cursor=",
    "/collection/%ZZ/capture/session",
    "/openapi.json/..%2f",
  ),
  fc.webPath(),
)

const request = fc.record({
  method: fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH"),
  path,
  body,
  contentType: fc.constantFrom(
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "",
    "application/json; charset=utf-8",
  ),
  token: fc.constantFrom(TEST_API_KEY, "", "sk-nope", "st-nope", "garbage"),
})

/** Failure reports, malformed every way; sampled apart, so `request`'s draws stay as they were. */
const failRequest = fc.record({
  method: fc.constantFrom("POST", "GET"),
  path: fc.constantFrom("/capture/session/SESSION/fail", "/capture/session/cap-0/fail"),
  body: fc.oneof(
    fc
      .record(
        {
          error: fc.oneof(
            fc.record(
              { code: fc.oneof(fc.string(), fc.constant("capture_failed")), message: fc.string() },
              { requiredKeys: [] },
            ),
            fc.jsonValue({ maxDepth: 1 }),
          ),
        },
        { requiredKeys: [] },
      )
      .map((value) => JSON.stringify(value)),
    body,
  ),
  contentType: fc.constantFrom("application/json", "text/plain", ""),
  token: fc.constantFrom(TEST_API_KEY, "", "sk-nope", "st-nope"),
})

/** The rtstream routes and clips, with malformed ids, queries and bodies. */
const rtstreamRequest = fc.record({
  method: fc.constantFrom("GET", "POST", "PATCH", "PUT"),
  path: fc.oneof(
    fc.constantFrom(
      "/rtstream",
      "/rtstream?limit=abc&offset=-1&ordering=size&status=live&session_id=..",
      "/rtstream?collection_id=c-x&name=&limit=100000",
      "/rtstream/RTSTREAM",
      "/rtstream/RTSTREAM/status",
      "/rtstream/RTSTREAM/stream?start=abc&end=",
      "/rtstream/RTSTREAM/stream?start=1763000000&end=1763000010&format=mp4",
      "/rtstream/RTSTREAM/export",
      "/rtstream/rts-x/stream",
      "/clip/SESSION/display%3A1/1-2/index.m3u8?exp=1&sig=x",
      "/clip/SESSION/display%3A1/1-2/clip.mp4",
    ),
    fc
      .tuple(
        fc.constantFrom("/rtstream/", "/rtstream/RTSTREAM/stream?start=", "/rtstream?limit="),
        fc.string(),
      )
      .map(([prefix, tail]) => `${prefix}${encodeURIComponent(tail)}`),
  ),
  body: fc.oneof(
    body,
    fc
      .record(
        { action: fc.oneof(fc.constantFrom("start", "stop", "pause"), fc.integer()), name: fc.jsonValue() },
        { requiredKeys: [] },
      )
      .map((value) => JSON.stringify(value)),
  ),
  contentType: fc.constantFrom("application/json", "text/plain", ""),
  token: fc.constantFrom(TEST_API_KEY, "", "st-nope"),
})

describe("generated malformed requests", () => {
  it("never get a 5xx, always get the envelope, and leave the server up", async () => {
    const samples = [
      ...fc.sample(request, { numRuns: 2_500, seed: 20261121 }),
      ...fc.sample(failRequest, { numRuns: 300, seed: 20261121 }),
    ]
    const statuses = new Map<number, number>()
    const queue = [...samples]
    const worker = async () => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        const url = `${api.url}${next.path.replaceAll("RTSTREAM", `rts-${sessionId.slice(4)}-00`).replaceAll("SESSION", sessionId)}`
        const headers: Record<string, string> = {}
        if (next.token !== "") headers["x-access-token"] = next.token
        if (next.contentType !== "") headers["content-type"] = next.contentType
        const response = await fetch(url, {
          method: next.method,
          headers,
          ...(next.method === "GET" ? {} : { body: next.body }),
        })
        const text = await response.text()
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
        const context = `${next.method} ${next.path} ${JSON.stringify(next.body).slice(0, 120)} → ${response.status} ${text.slice(0, 200)}`
        expect(response.status, context).toBeLessThan(500)
        if (response.status >= 400 && !next.path.startsWith("/docs")) {
          const parsed = JSON.parse(text) as { success: boolean; error_code: string; message: string }
          expect(parsed.success, context).toBe(false)
          expect(typeof parsed.error_code, context).toBe("string")
        }
      }
    }
    await Promise.all(Array.from({ length: 8 }, worker))
    // Refusals of every kind were exercised, and the server still serves.
    expect([...statuses.keys()].filter((status) => status >= 400).length).toBeGreaterThanOrEqual(4)
    const health = await api.request("GET", "/collection/default")
    expect(health.status).toBe(200)
    // Generated callback URLs name random public hosts: refused by the test's resolver, not looked up.
    for (const url of fc.sample(fc.webUrl(), { numRuns: 20, seed: 20261207 })) {
      const created = await api.request("POST", "/collection/default/capture/session", {
        body: { end_user_id: "fuzz", callback_url: url },
      })
      expect(created.status, url).toBeLessThan(500)
    }
    expect(askedNames.size).toBeGreaterThan(0)
  }, 120_000)

  it("on the rtstream routes and clips: never a 5xx, always the envelope", async () => {
    const statuses = new Set<number>()
    for (const next of fc.sample(rtstreamRequest, { numRuns: 500, seed: 20261207 })) {
      const path = next.path
        .replaceAll("RTSTREAM", `rts-${sessionId.slice(4)}-00`)
        .replaceAll("SESSION", sessionId)
      const headers: Record<string, string> = {}
      if (next.token !== "") headers["x-access-token"] = next.token
      if (next.contentType !== "") headers["content-type"] = next.contentType
      const response = await fetch(`${api.url}${path}`, {
        method: next.method,
        headers,
        ...(next.method === "GET" ? {} : { body: next.body }),
      })
      const text = await response.text()
      statuses.add(response.status)
      const context = `${next.method} ${path} ${next.body.slice(0, 120)} → ${response.status} ${text.slice(0, 200)}`
      expect(response.status, context).toBeLessThan(500)
      if (response.status >= 400) {
        const parsed = JSON.parse(text) as { success: boolean; error_code: string }
        expect(parsed.success, context).toBe(false)
        expect(typeof parsed.error_code, context).toBe("string")
      }
    }
    expect([...statuses].filter((status) => status >= 400).length).toBeGreaterThanOrEqual(4)
  }, 120_000)
})

/** Sends raw bytes on a TCP connection to the gateway; what comes back before it closes. */
const rawExchange = async (bytes: string): Promise<string> => {
  const { connect } = await import("node:net")
  const { port } = new URL(api.url)
  const socket = connect(Number(port), "127.0.0.1")
  const chunks: Array<Buffer> = []
  socket.on("data", (chunk: Buffer) => chunks.push(chunk))
  await new Promise((resolve) => socket.once("connect", resolve))
  socket.write(bytes)
  await new Promise((resolve) => socket.once("close", resolve))
  return Buffer.concat(chunks).toString()
}

const bodyOf = (response: string) => JSON.parse(response.slice(response.indexOf("\r\n\r\n") + 4))

describe("what the OpenAPI document promises (issue 15, item 11)", () => {
  it("refuses a body field the API does not know, naming it", async () => {
    const created = await api.request("POST", "/collection/default/capture/session", {
      body: { end_user_id: "u", end_user: "typo" },
    })
    expect(created).toMatchObject({ status: 400, body: { error_code: "invalid_field", field: "end_user" } })
    const token = await api.request("POST", "/capture/session/token", {
      body: { user_id: "u", scope: "all" },
    })
    expect(token).toMatchObject({ status: 400, body: { field: "scope" } })
  })

  it("refuses a body without a content type with 415, and takes a bodiless POST", async () => {
    const response = await fetch(`${api.url}/collection/default/capture/session`, {
      method: "POST",
      headers: { "x-access-token": TEST_API_KEY },
      body: new TextEncoder().encode(JSON.stringify({ end_user_id: "u" })),
    })
    expect(response.status).toBe(415)
    expect(await response.json()).toMatchObject({
      success: false,
      error_code: "unsupported_media_type",
      field: "content-type",
    })
    const created = await api.request("POST", "/collection/default/capture/session", {
      body: { end_user_id: "u" },
    })
    const id = (created.body.data as { id: string }).id
    const stopped = await fetch(`${api.url}/capture/session/${id}/stop`, {
      method: "POST",
      headers: { "x-access-token": TEST_API_KEY },
    })
    expect(stopped.status).not.toBe(415)
  })

  it("refuses a blank end_user_id or one with a NUL or other control character", async () => {
    for (const endUserId of [" ", "\t\n", "a\u0000b", "\u0007", ""]) {
      const created = await api.request("POST", "/collection/default/capture/session", {
        body: { end_user_id: endUserId },
      })
      expect(created, JSON.stringify(endUserId)).toMatchObject({
        status: 400,
        body: { error_code: "invalid_field", field: "end_user_id" },
      })
    }
    const token = await api.request("POST", "/capture/session/token", { body: { user_id: "a\u0000" } })
    expect(token).toMatchObject({ status: 400, body: { field: "user_id" } })
    expect(
      (await api.request("POST", "/collection/default/capture/session", { body: { end_user_id: "Zoë 7" } }))
        .status,
    ).toBe(200)
  })

  it("answers what Node's HTTP parser refuses with the envelope: 400 and 431", async () => {
    const malformed = await rawExchange("GARBAGE / HTTP/1.1\r\nhost: x\r\n\r\n")
    expect(malformed).toMatch(/^HTTP\/1\.1 400 /)
    expect(bodyOf(malformed)).toMatchObject({ success: false, error_code: "invalid_request" })
    const huge = await rawExchange(`GET / HTTP/1.1\r\nhost: x\r\nx-big: ${"a".repeat(20_000)}\r\n\r\n`)
    expect(huge).toMatch(/^HTTP\/1\.1 431 /)
    expect(bodyOf(huge)).toMatchObject({ success: false, error_code: "invalid_request" })
  })
})
