/**
 * `capture serve` takes its limits from the environment (docs/operations.md): the HTTP server's
 * slow-client timeouts, JSON bounds and the WebSocket message size reach the running server, and
 * a contradictory setting stops it with a usage error.
 */
import { connect } from "node:net"
import { getFreePort, type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { WebSocket } from "ws"
import { killIfRunning, runCli, type ServeProcess, startServe } from "./cli.js"

const API_KEY = "sk-serve-limits-key"
let nats: NatsServerHandle
let server: ServeProcess
let base: string

beforeAll(async () => {
  nats = await startNatsServer()
  const port = await getFreePort()
  base = `http://127.0.0.1:${port}`
  server = startServe(["--port", String(port), "--role", "gateway"], {
    NATS_URL: nats.url,
    CAPTURE_API_KEY: API_KEY,
    CAPTURE_HTTP_HEADERS_TIMEOUT_MS: "500",
    CAPTURE_HTTP_REQUEST_TIMEOUT_MS: "5000",
    CAPTURE_HTTP_IDLE_TIMEOUT_MS: "5000",
    CAPTURE_MAX_JSON_DEPTH: "4",
    CAPTURE_WS_MAX_MESSAGE_BYTES: "1024",
    // An hour-long window never ends while the test runs.
    CAPTURE_RATE_LIMIT_WINDOW_SECONDS: "3600",
    CAPTURE_RATE_LIMIT_PER_CLIENT_TOKEN: "2",
  })
  await server.waitFor(/\[capture\] ready/)
}, 60_000)
afterAll(async () => {
  if (server !== undefined) await killIfRunning(server)
  await nats?.stop()
})

describe("capture serve limits from the environment", () => {
  it("drops a socket that never completes its headers after CAPTURE_HTTP_HEADERS_TIMEOUT_MS", async () => {
    const socket = connect(Number(new URL(base).port), "127.0.0.1")
    await new Promise((resolve) => socket.once("connect", resolve))
    const openedAt = Date.now()
    socket.on("data", () => {})
    socket.write("GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n")
    const closedAfter = await new Promise<number>((resolve) =>
      socket.once("close", () => resolve(Date.now() - openedAt)),
    )
    expect(closedAfter).toBeLessThan(2_500)
  })

  it("refuses JSON deeper than CAPTURE_MAX_JSON_DEPTH", async () => {
    const response = await fetch(`${base}/collection/default/capture/session`, {
      method: "POST",
      headers: { "x-access-token": API_KEY, "content-type": "application/json" },
      body: JSON.stringify({ end_user_id: "u", metadata: { a: { b: { c: { d: 1 } } } } }),
    })
    expect(response.status).toBe(400)
    expect(await response.json()).toMatchObject({ error_code: "invalid_json", field: "metadata" })
  })

  it("refuses a client token's third request with CAPTURE_RATE_LIMIT_PER_CLIENT_TOKEN=2", async () => {
    const issued = await fetch(`${base}/capture/session/token`, {
      method: "POST",
      headers: { "x-access-token": API_KEY, "content-type": "application/json" },
      body: JSON.stringify({ end_user_id: "u" }),
    })
    const { data } = (await issued.json()) as { data: { token: string } }
    const ask = () =>
      fetch(`${base}/collection/default/websocket`, { headers: { "x-access-token": data.token } })
    expect([(await ask()).status, (await ask()).status]).toEqual([200, 200])
    const refused = await ask()
    expect(refused.status).toBe(429)
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0)
    expect(await refused.json()).toMatchObject({ error_code: "rate_limited", field: "x-access-token" })
  })

  it("closes a WebSocket whose client sends more than CAPTURE_WS_MAX_MESSAGE_BYTES", async () => {
    const issued = await fetch(`${base}/collection/default/websocket`, {
      headers: { "x-access-token": API_KEY },
    })
    const { data } = (await issued.json()) as { data: { websocket_url: string } }
    const socket = new WebSocket(data.websocket_url)
    await new Promise((resolve) => socket.once("message", resolve))
    const closed = new Promise<number>((resolve) => socket.once("close", resolve))
    socket.send(Buffer.alloc(2048))
    expect(await closed).toBe(1009)
  })

  it("stops with a usage error when the headers may take longer than the whole request", async () => {
    const result = await runCli(["serve", "--port", String(await getFreePort())], {
      NATS_URL: nats.url,
      CAPTURE_HTTP_HEADERS_TIMEOUT_MS: "10000",
      CAPTURE_HTTP_REQUEST_TIMEOUT_MS: "5000",
    })
    expect(result.code).toBe(2)
    expect(result.stdout + result.stderr).toMatch(/CAPTURE_HTTP_HEADERS_TIMEOUT_MS/)
  })
})
