/**
 * Ingest bounds (issue 15, defect 3): the body streams to the store and is checked as it comes
 * (MPEG-TS structure, size), segment indexes are bounded, sessions and accounts have storage
 * quotas, and one credential's uploads in flight are bounded.
 */
import { createHash, randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { request as httpRequest } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SEGMENT_CONTENT_TYPE, SegmentHeaders } from "@capture/protocol"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { jetstreamManager } from "@nats-io/jetstream"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DEFAULT_LIMITS } from "../../src/index.js"
import { TS_PACKET_BYTES } from "../../src/ingest/SegmentBody.js"
import { encodeTestSegments, startTestGateway, TEST_API_KEY, type TestGateway } from "./TestGateway.js"

let nats: NatsServerHandle
let api: TestGateway
let dir: string
/** Three real one-second MPEG-TS segments of one video stream. */
let segments: Array<Uint8Array>

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "capture-ingest-bounds-"))
  segments = encodeTestSegments(dir, 3)
  nats = await startNatsServer()
  api = await startTestGateway(nats.url)
}, 60_000)
afterAll(async () => {
  await api?.stop()
  await nats?.stop()
  rmSync(dir, { recursive: true, force: true })
})

const data = (body: Record<string, unknown>) => body.data as Record<string, unknown>
const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")
const segment = (i: number) => segments[i] as Uint8Array

const segmentUrl = (gateway: TestGateway, sessionId: string, index: number, channel = "display:1") =>
  `${gateway.url}/capture/session/${sessionId}/channels/${encodeURIComponent(channel)}/segments/${index}`

const headersFor = (bytes: Uint8Array, token: string) => ({
  [SegmentHeaders.token]: token,
  "content-type": SEGMENT_CONTENT_TYPE,
  [SegmentHeaders.startMs]: "1763000000000",
  [SegmentHeaders.durationMs]: "1000",
  [SegmentHeaders.sha256]: sha(bytes),
})

const upload = async (
  gateway: TestGateway,
  sessionId: string,
  index: number,
  bytes: Uint8Array,
  token = TEST_API_KEY,
) => {
  const response = await fetch(segmentUrl(gateway, sessionId, index), {
    method: "PUT",
    headers: headersFor(bytes, token),
    body: bytes,
  })
  return {
    status: response.status,
    retryAfter: response.headers.get("retry-after"),
    body: (await response.json()) as Record<string, unknown>,
  }
}

/**
 * A PUT of `bytes` whose body the test sends piece by piece (`send`, `end`); `answered` settles
 * with the server's answer, which may come before the body is complete. Without `declareLength`
 * the body is chunked.
 */
const openUpload = (
  gateway: TestGateway,
  sessionId: string,
  index: number,
  bytes: Uint8Array,
  options: { readonly declareLength?: boolean; readonly token?: string } = {},
) => {
  const request = httpRequest(segmentUrl(gateway, sessionId, index), {
    method: "PUT",
    headers: {
      ...headersFor(bytes, options.token ?? TEST_API_KEY),
      ...(options.declareLength === false ? {} : { "content-length": String(bytes.length) }),
    },
  })
  let settled = false
  let aborted = false
  const answered = new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
    request.on("response", (response) => {
      let text = ""
      response.on("data", (chunk: Buffer) => {
        text += chunk.toString()
      })
      response.on("end", () => {
        settled = true
        resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> })
      })
    })
    // Writes after the server refused and closed may fail: the answer is what counts.
    request.on("error", (error) => {
      if (!settled && !aborted) reject(error)
    })
  })
  return {
    answered,
    isAnswered: () => settled,
    send: (from: number, to: number) =>
      new Promise<void>((resolve) => request.write(bytes.subarray(from, to), () => resolve())),
    end: (from: number) => request.end(bytes.subarray(from)),
    abort: () => {
      aborted = true
      request.destroy()
    },
  }
}

const newSession = async (gateway: TestGateway, token = TEST_API_KEY, endUser = "user-a") => {
  const created = await gateway.request("POST", "/collection/default/capture/session", {
    token,
    body: { end_user_id: endUser },
  })
  const id = data(created.body).id as string
  const started = await gateway.request("POST", "/capture/session/start", {
    token,
    body: { session_id: id, channels: [{ channel_id: "display:1" }] },
  })
  expect(started.status).toBe(200)
  return id
}

/** Real segments one after another: still MPEG-TS, as large as wanted. */
const largeSegment = (minBytes: number): Uint8Array => {
  const copies = Math.ceil(minBytes / segment(0).length)
  const out = new Uint8Array(copies * segment(0).length)
  for (let i = 0; i < copies; i++) out.set(segment(0), i * segment(0).length)
  return out
}

const waitFor = async (condition: () => Promise<boolean> | boolean, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("timed out waiting")
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

const stored = async (gateway: TestGateway, id: string) =>
  (await gateway.gateway.services.media.list(id)).length

describe("segment bodies", () => {
  it("refuses bytes that only have a sync byte every 188 bytes, and a damaged PAT", async () => {
    const id = await newSession(api)
    const fake = new Uint8Array(randomBytes(TS_PACKET_BYTES * 100))
    for (let offset = 0; offset < fake.length; offset += TS_PACKET_BYTES) fake[offset] = 0x47
    const damaged = segment(0).slice()
    // The PAT's CRC no longer matches (ffmpeg writes it as the second packet).
    damaged[TS_PACKET_BYTES + 10] = (damaged[TS_PACKET_BYTES + 10] ?? 0) ^ 0xff
    const truncated = segment(0).subarray(0, segment(0).length - 100)
    for (const bytes of [fake, damaged, truncated]) {
      expect(await upload(api, id, 0, bytes)).toMatchObject({
        status: 422,
        body: { error_code: "unsupported_media", field: "body" },
      })
    }
    expect(await stored(api, id)).toBe(0)
    expect((await upload(api, id, 0, segment(0))).status).toBe(200)
  })

  it("bounds the segment index", async () => {
    const id = await newSession(api)
    for (const index of [DEFAULT_LIMITS.maxSegmentIndex + 1, 10_000_000, 99_999_999_999]) {
      expect({ index, ...(await upload(api, id, index, segment(0))) }).toMatchObject({
        index,
        status: 400,
        body: { error_code: "invalid_field", field: "index" },
      })
    }
    expect((await upload(api, id, DEFAULT_LIMITS.maxSegmentIndex, segment(0))).status).toBe(200)
  })

  it("writes the body to the store while it arrives, never holding it whole", async () => {
    const id = await newSession(api)
    const bytes = largeSegment(3 * 1024 * 1024)
    const jsm = await jetstreamManager(api.nc)
    const objectStream = `OBJ_${api.gateway.services.media.topology.bucket}`
    const bytesInStore = async () => (await jsm.streams.info(objectStream)).state.bytes
    const before = await bytesInStore()
    const pending = openUpload(api, id, 0, bytes)
    await pending.send(0, 2 * 1024 * 1024)
    // With two thirds of the body sent and the rest held back, most of it is stored already.
    await waitFor(async () => (await bytesInStore()) - before >= 1024 * 1024)
    expect(pending.isAnswered()).toBe(false)
    pending.end(2 * 1024 * 1024)
    expect(await pending.answered).toMatchObject({ status: 200, body: { data: { duplicate: false } } })
    expect(sha((await api.gateway.services.media.read(id, "display:1", 0)) ?? new Uint8Array())).toBe(
      sha(bytes),
    )
  })

  it("refuses a body at its first bad packet, before the rest is sent", async () => {
    const id = await newSession(api)
    const junk = new Uint8Array(1024 * 1024).fill(0x47)
    const pending = openUpload(api, id, 0, junk)
    await pending.send(0, TS_PACKET_BYTES * 32)
    expect(await pending.answered).toMatchObject({ status: 422, body: { error_code: "unsupported_media" } })
    pending.abort()
    expect(await stored(api, id)).toBe(0)
  })

  it("enforces the size limit while a chunked body streams", async () => {
    const id = await newSession(api)
    // The test gateway takes 4 MiB segments; this body declares no length.
    const bytes = largeSegment(5 * 1024 * 1024)
    const pending = openUpload(api, id, 0, bytes, { declareLength: false })
    for (let sent = 0; sent < bytes.length && !pending.isAnswered(); sent += 256 * 1024) {
      await pending.send(sent, sent + 256 * 1024)
    }
    expect(await pending.answered).toMatchObject({
      status: 413,
      body: { error_code: "payload_too_large", field: "body" },
    })
    pending.abort()
    expect(await stored(api, id)).toBe(0)
  })
})

describe("storage quotas and uploads in flight", () => {
  let one: TestGateway
  let two: TestGateway
  let key: string

  beforeAll(async () => {
    const [s0, s1] = [segment(0).length, segment(1).length]
    const limits = {
      sessionQuotaBytes: s0 + s1,
      // Two sessions' first segments and one's second; not both second ones.
      accountQuotaBytes: 2 * s0 + 2 * s1 - 1,
      maxUploadsPerCredential: 2,
    }
    ;[one, two] = await Promise.all([startTestGateway(nats.url, limits), startTestGateway(nats.url, limits)])
    const account = await one.gateway.accounts.createAccount("quota")
    key = (await one.gateway.accounts.createApiKey(account.id)).key
  }, 60_000)
  afterAll(async () => {
    await Promise.all([one?.stop(), two?.stop()])
  })

  it("refuses with 402 quota_exceeded past a session's and an account's quota, on every gateway", async () => {
    const first = await newSession(one, key)
    expect((await upload(one, first, 0, segment(0), key)).status).toBe(200)
    expect((await upload(two, first, 1, segment(1), key)).status).toBe(200)
    // Each gateway adds what it stored to the shared count within a second.
    await Promise.all([one.gateway.services.quota.flush(), two.gateway.services.quota.flush()])
    await new Promise((resolve) => setTimeout(resolve, 1_100))
    const overSession = await upload(one, first, 2, segment(2), key)
    expect(overSession).toMatchObject({ status: 402, body: { success: false, error_code: "quota_exceeded" } })
    expect(String(overSession.body.message)).toMatch(/session/)
    // A retry of a segment stored before the quota filled up is still acknowledged.
    expect(await upload(one, first, 1, segment(1), key)).toMatchObject({
      status: 200,
      body: { data: { duplicate: true } },
    })

    const second = await newSession(two, key)
    expect((await upload(two, second, 0, segment(0), key)).status).toBe(200)
    const overAccount = await upload(two, second, 1, segment(1), key)
    expect(overAccount).toMatchObject({ status: 402, body: { error_code: "quota_exceeded" } })
    expect(String(overAccount.body.message)).toMatch(/account/)
    expect([await stored(one, first), await stored(two, second)]).toEqual([2, 1])
  })

  it("answers 429 rate_limited with Retry-After past the uploads one credential may have in flight", async () => {
    const account = await one.gateway.accounts.createAccount("uploads")
    const accountKey = (await one.gateway.accounts.createApiKey(account.id)).key
    const { token } = await one.gateway.accounts.createClientToken(account.id, { expiresInSeconds: 600 })
    const [id, other] = [await newSession(one, accountKey), await newSession(one, accountKey)]
    const stalled = [0, 1].map((index) => openUpload(one, id, index, segment(index), { token }))
    for (const upload of stalled) await upload.send(0, TS_PACKET_BYTES * 2)
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(await upload(one, other, 0, segment(0), token)).toMatchObject({
      status: 429,
      retryAfter: "1",
      body: { error_code: "rate_limited", field: SegmentHeaders.token },
    })
    // Another credential is not held back.
    expect((await upload(one, other, 0, segment(0), accountKey)).status).toBe(200)
    // A slot frees when an upload ends, even one the client gave up.
    stalled[0]?.abort()
    stalled[1]?.end(TS_PACKET_BYTES * 2)
    expect((await stalled[1]?.answered)?.status).toBe(200)
    await waitFor(async () => (await upload(one, id, 0, segment(0), token)).status === 200, 5_000)
  })
})

describe("the session's state across gateways", () => {
  let one: TestGateway
  let two: TestGateway

  beforeAll(async () => {
    // `one` takes segments on what it knew of a session a minute ago.
    ;[one, two] = await Promise.all([
      startTestGateway(nats.url, { sessionStateMaxAgeMs: 60_000 }),
      startTestGateway(nats.url),
    ])
  }, 60_000)
  afterAll(async () => {
    await Promise.all([one?.stop(), two?.stop()])
  })

  it("takes a segment on a gateway that last saw the session before another gateway started it", async () => {
    const created = await one.request("POST", "/collection/default/capture/session", {
      body: { end_user_id: "user-a" },
    })
    const id = data(created.body).id as string
    // `one` knows the session as created, a moment ago; `two` starts it.
    const started = await two.request("POST", "/capture/session/start", {
      body: { session_id: id, channels: [{ channel_id: "display:1" }] },
    })
    expect(started.status).toBe(200)
    expect(await upload(one, id, 0, segment(0))).toMatchObject({
      status: 200,
      body: { data: { duplicate: false } },
    })
    const status = await one.request("GET", `/capture/session/${id}`)
    expect(data(status.body).status).toBe("active")
  })
})
