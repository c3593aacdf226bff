import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { HttpError, IngestClient, isRetryable, isSessionEnded, NetworkError } from "../src/IngestClient.js"
import type { SegmentRecord } from "../src/Spool.js"

const record: SegmentRecord = {
  session_id: "cap-1",
  channel_id: "mic:default",
  index: 3,
  start_ms: 1_700_000_000_000,
  duration_ms: 2005,
  bytes: 4,
  sha256: "ab".repeat(32),
}

describe("IngestClient", () => {
  let server: Server
  let baseUrl: string
  let answer: (
    headers: Record<string, string | string[] | undefined>,
    url: string,
  ) => [number, Record<string, string>, string]
  beforeAll(async () => {
    server = createServer((request, response) => {
      request.resume()
      request.on("end", () => {
        const [status, headers, body] = answer(request.headers, request.url ?? "")
        response.writeHead(status, headers)
        response.end(body)
      })
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  })
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })

  it("sends a segment with the contract's path and headers", async () => {
    let seen: { headers: Record<string, string | string[] | undefined>; url: string } | undefined
    answer = (headers, url) => {
      seen = { headers, url }
      return [
        200,
        {},
        JSON.stringify({
          success: true,
          data: { session_id: "cap-1", channel_id: "mic:default", index: 3, duplicate: true },
        }),
      ]
    }
    const client = new IngestClient({ baseUrl, clientToken: "st-abc" })
    const ack = await client.putSegment(record, new Uint8Array([1, 2, 3, 4]), true)
    expect(ack).toEqual({ session_id: "cap-1", channel_id: "mic:default", index: 3, duplicate: true })
    expect(seen?.url).toBe("/capture/session/cap-1/channels/mic%3Adefault/segments/3")
    expect(seen?.headers).toMatchObject({
      "x-access-token": "st-abc",
      "content-type": "video/mp2t",
      "x-segment-start-ms": "1700000000000",
      "x-segment-duration-ms": "2005",
      "x-segment-sha256": "ab".repeat(32),
      "x-segment-final": "1",
    })
  })

  it("turns refusals into typed errors: envelope fields, Retry-After, foreign bodies", async () => {
    const client = new IngestClient({ baseUrl, clientToken: "st-abc" })
    answer = () => [
      409,
      { "content-type": "application/json" },
      JSON.stringify({
        success: false,
        message: "session is stopped",
        error_code: "invalid_transition",
        current_status: "stopped",
      }),
    ]
    const ended = await client.putSegment(record, new Uint8Array(4), false).catch((error: unknown) => error)
    expect(ended).toBeInstanceOf(HttpError)
    expect(isSessionEnded(ended as HttpError)).toBe(true)
    expect(isRetryable(ended as HttpError)).toBe(false)

    answer = () => [
      429,
      { "retry-after": "2" },
      JSON.stringify({ success: false, message: "slow down", error_code: "rate_limited" }),
    ]
    const limited = (await client
      .putSegment(record, new Uint8Array(4), false)
      .catch((error: unknown) => error)) as HttpError
    expect(limited).toMatchObject({ status: 429, errorCode: "rate_limited", retryAfterMs: 2000 })
    expect(isRetryable(limited)).toBe(true)

    answer = () => [502, { "content-type": "text/html" }, "<html>Bad gateway</html>"]
    const proxy = (await client
      .putSegment(record, new Uint8Array(4), false)
      .catch((error: unknown) => error)) as HttpError
    expect(proxy).toMatchObject({ _tag: "HttpError", status: 502 })
    expect(isRetryable(proxy)).toBe(true)

    answer = () => [
      413,
      {},
      JSON.stringify({ success: false, message: "too big", error_code: "payload_too_large" }),
    ]
    expect(
      isRetryable(
        (await client.putSegment(record, new Uint8Array(4), false).catch((e: unknown) => e)) as HttpError,
      ),
    ).toBe(false)

    const nowhere = new IngestClient({ baseUrl: "http://127.0.0.1:1", clientToken: "st-abc" })
    const refused = await nowhere
      .putSegment(record, new Uint8Array(4), false)
      .catch((error: unknown) => error)
    expect(refused).toBeInstanceOf(NetworkError)
    expect(isRetryable(refused as NetworkError)).toBe(true)
  })
})
