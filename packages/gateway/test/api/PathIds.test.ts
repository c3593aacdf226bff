/**
 * Ids in request paths end up in KV keys and NATS subjects: a hostile one (`..`, `%00`, `*`, `>`,
 * spaces, very long) must be refused at the edge with a 4xx naming the field, and no answer may
 * reveal an account id or how keys are laid out. Paths are sent raw (fetch would normalise `..`).
 */
import { createHash } from "node:crypto"
import { request as httpRequest } from "node:http"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startTestGateway, TEST_API_KEY, type TestGateway } from "./TestGateway.js"

let nats: NatsServerHandle
let api: TestGateway
let sessionId: string
let accountId: string

beforeAll(async () => {
  nats = await startNatsServer()
  api = await startTestGateway(nats.url)
  const created = await api.request("POST", "/collection/default/capture/session", {
    body: { end_user_id: "paths" },
  })
  sessionId = (created.body.data as { id: string }).id
  accountId = (await api.runtime.host.load(sessionId)).state.context.account_id ?? ""
  expect(accountId).toMatch(/^acct-/)
}, 60_000)
afterAll(async () => {
  await api?.stop()
  await nats?.stop()
})

const segment = new Uint8Array(188).fill(0x47)

/** Sends `path` exactly as written, with a body and headers the route would accept. */
const raw = (method: string, path: string): Promise<{ status: number; text: string }> =>
  new Promise((resolve, reject) => {
    const url = new URL(api.url)
    const body: Uint8Array | string | undefined =
      method === "PUT" ? segment : method === "POST" ? JSON.stringify({ end_user_id: "paths" }) : undefined
    const headers: Record<string, string> =
      method === "PUT"
        ? {
            "content-type": "video/mp2t",
            "x-segment-start-ms": "0",
            "x-segment-duration-ms": "1000",
            "x-segment-sha256": createHash("sha256").update(segment).digest("hex"),
          }
        : method === "POST"
          ? { "content-type": "application/json" }
          : {}
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        method,
        path,
        headers: { "x-access-token": TEST_API_KEY, ...headers },
      },
      (response) => {
        let text = ""
        response.setEncoding("utf8")
        response.on("data", (chunk: string) => {
          text += chunk
        })
        response.on("end", () => resolve({ status: response.statusCode ?? 0, text }))
      },
    )
    req.on("error", reject)
    req.end(body)
  })

const hostile = [
  "..",
  "%2e%2e",
  "%2E%2E",
  ".",
  "%00",
  "cap-%00",
  "*",
  ">",
  "a.>",
  "%20",
  "c-a%20b",
  "%25ZZ",
  "c-..",
  "cap-x.y",
  `c-${"a".repeat(90)}`,
  `cap-${"A".repeat(500)}`,
]

/** Every route with an id in its path; `{x}` is where the hostile value goes, the others are valid. */
const routes: ReadonlyArray<readonly [method: string, template: string, field: string]> = [
  ["GET", "/collection/{x}", "collection_id"],
  ["GET", "/collection/{x}/websocket", "collection_id"],
  ["POST", "/collection/{x}/capture/session", "collection_id"],
  ["GET", "/collection/{x}/capture/session", "collection_id"],
  ["GET", "/collection/{x}/capture/session/SESSION", "collection_id"],
  ["GET", "/collection/default/capture/session/{x}", "session_id"],
  ["POST", "/collection/{x}/capture/session/SESSION/export", "collection_id"],
  ["POST", "/collection/default/capture/session/{x}/export", "session_id"],
  ["GET", "/capture/session/{x}", "session_id"],
  ["POST", "/capture/session/{x}/stop", "session_id"],
  ["POST", "/capture/session/{x}/pause", "session_id"],
  ["POST", "/capture/session/{x}/resume", "session_id"],
  ["GET", "/capture/session/{x}/webhooks", "session_id"],
  ["PUT", "/capture/session/{x}/channels/display%3A1/segments/0", "session_id"],
  ["PUT", "/capture/session/SESSION/channels/{x}/segments/0", "channel_id"],
  ["PUT", "/capture/session/SESSION/channels/display%3A1/segments/{x}", "index"],
  ["GET", "/live/{x}/display%3A1/index.m3u8", "session_id"],
  ["GET", "/live/SESSION/{x}/index.m3u8", "channel_id"],
  ["GET", "/collection/{x}/video/m-0000000000", "collection_id"],
  ["GET", "/collection/default/video/{x}", "video_id"],
  ["GET", "/collection/default/audio/{x}", "audio_id"],
  ["GET", "/media/{x}/index.m3u8", "video_id"],
  ["GET", "/media/m-0000000000/{x}", "file"],
  ["GET", "/player/{x}", "video_id"],
  ["GET", "/video/{x}?collection_id=default", "video_id"],
  ["POST", "/video/{x}/index", "video_id"],
  ["POST", "/video/{x}/search", "video_id"],
  ["POST", "/video/{x}/stream", "video_id"],
  ["GET", "/rtstream/{x}", "rtstream_id"],
  ["PATCH", "/rtstream/{x}/status", "rtstream_id"],
  ["GET", "/rtstream/{x}/stream?start=1&end=2", "rtstream_id"],
  ["POST", "/rtstream/{x}/export", "rtstream_id"],
  ["GET", "/rtstream/{x}/export", "rtstream_id"],
  ["GET", "/rtstream?session_id={x}", "session_id"],
  ["GET", "/clip/{x}/display%3A1/1-2/index.m3u8", "sig"],
  ["GET", "/clip/SESSION/{x}/1-2/clip.mp4", "sig"],
  ["GET", "/clip/SESSION/display%3A1/{x}/0.ts", "sig"],
]

describe("ids in request paths", () => {
  it("refuses hostile ids with a 4xx envelope that names the field and reveals nothing internal", async () => {
    const failures: Array<string> = []
    for (const [method, template, field] of routes) {
      for (const value of hostile) {
        const path = template.replace("{x}", value).replace("SESSION", sessionId)
        const { status, text } = await raw(method, path)
        const where = `${method} ${path} → ${status} ${text.slice(0, 300)}`
        let body: { success?: unknown; error_code?: unknown; field?: unknown; message?: unknown }
        try {
          body = JSON.parse(text) as typeof body
        } catch {
          failures.push(`not JSON: ${where}`)
          continue
        }
        if (status < 400 || status >= 500) failures.push(`status: ${where}`)
        if (body.success !== false || typeof body.error_code !== "string") failures.push(`envelope: ${where}`)
        if (/acct-|collection\.|session\.|invalid key|\$KV|\$JS/i.test(text)) failures.push(`leaks: ${where}`)
        // An API route's own id at fault is named; 404s of unknown routes name nothing.
        if (status === 400 && body.field !== undefined && body.field !== field && body.field !== "body") {
          failures.push(`field ${String(body.field)} instead of ${field}: ${where}`)
        }
      }
    }
    expect(failures).toEqual([])
  }, 60_000)

  it("answers 400 invalid_field naming collection_id, session_id and rtstream_id for ids the schema refuses", async () => {
    for (const value of ["..", "%2e%2e", "%00", "*", ">", "%20", "c-a.b"]) {
      const collection = JSON.parse((await raw("GET", `/collection/${value}`)).text) as Record<
        string,
        unknown
      >
      expect(collection, value).toMatchObject({ error_code: "invalid_field", field: "collection_id" })
      const session = JSON.parse((await raw("GET", `/capture/session/cap-${value}`)).text) as Record<
        string,
        unknown
      >
      expect(session, value).toMatchObject({ error_code: "invalid_field", field: "session_id" })
      const rtstream = JSON.parse((await raw("GET", `/rtstream/rts-${value}`)).text) as Record<
        string,
        unknown
      >
      expect(rtstream, value).toMatchObject({ error_code: "invalid_field", field: "rtstream_id" })
    }
    expect((await raw("GET", "/collection/default")).status).toBe(200)
  })
})

describe("answers of 5xx", () => {
  it("carry a stable message, never the internal one, which goes to the log", async () => {
    const ownNats = await startNatsServer()
    const logged: Array<string> = []
    const own = await startTestGateway(ownNats.url, { log: (message) => logged.push(message) })
    try {
      // Warm the credential cache, then take storage away.
      expect((await own.request("GET", "/collection/default")).status).toBe(200)
      await ownNats.stop()
      const response = await own.request("GET", "/collection/c-0123456789")
      expect(response.status).toBe(503)
      expect(response.body).toEqual({
        success: false,
        error_code: "unavailable",
        message: "the service cannot reach its storage right now; retry the request",
      })
      expect(logged.join("\n")).toMatch(/GET \/collection\/c-0123456789 → 503: reading the collection/)
    } finally {
      await own.stop()
    }
  }, 60_000)
})
