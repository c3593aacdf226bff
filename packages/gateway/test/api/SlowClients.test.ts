/**
 * Slow clients (issue 15, defect 3): a socket holding incomplete headers, a stalled body or a body
 * dripping in is dropped by the HTTP server's timeouts, while a steady upload that takes longer
 * than the idle timeout, and an open WebSocket, are not. A client's WebSocket messages are bounded.
 */
import { type Socket, connect as tcpConnect } from "node:net"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { WebSocket } from "ws"
import type { HttpTimeouts } from "../../src/index.js"
import { startTestGateway, type TestGateway } from "./TestGateway.js"

let nats: NatsServerHandle
let api: TestGateway
const timeouts: HttpTimeouts = { headersTimeoutMs: 600, requestTimeoutMs: 2_000, idleTimeoutMs: 800 }

beforeAll(async () => {
  nats = await startNatsServer()
  api = await startTestGateway(nats.url, { httpTimeouts: timeouts })
}, 60_000)
afterAll(async () => {
  await api?.stop()
  await nats?.stop()
})

const data = (body: Record<string, unknown>) => body.data as Record<string, unknown>

/** A raw TCP connection to the gateway; `closedAfter` resolves with ms from open to close. */
const rawConnection = async () => {
  const { port } = new URL(api.url)
  const socket: Socket = tcpConnect(Number(port), "127.0.0.1")
  await new Promise((resolve) => socket.once("connect", resolve))
  const openedAt = Date.now()
  const received: Array<Buffer> = []
  socket.on("data", (chunk: Buffer) => received.push(chunk))
  socket.on("error", () => {})
  const closedAfter = new Promise<number>((resolve) =>
    socket.once("close", () => resolve(Date.now() - openedAt)),
  )
  return { socket, closedAfter, received: () => Buffer.concat(received).toString() }
}

const head = (method: string, path: string, headers: Record<string, string>) =>
  `${method} ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("")}`

describe("HTTP timeouts", () => {
  it("drops a socket that never completes its headers", async () => {
    const { socket, closedAfter, received } = await rawConnection()
    socket.write(head("GET", "/collection/default", { "x-access-token": "sk-test-gateway-key" }))
    // Still trickling header lines: each one resets nothing.
    const trickle = setInterval(() => socket.write("x-slow: 1\r\n"), 200)
    const after = await closedAfter
    clearInterval(trickle)
    expect(after).toBeGreaterThanOrEqual(timeouts.headersTimeoutMs - 50)
    expect(after).toBeLessThan(timeouts.headersTimeoutMs + 1_500)
    // Told why, in the failure envelope.
    const answer = received()
    expect(answer).toMatch(/^HTTP\/1\.1 408 /)
    expect(JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4))).toMatchObject({
      success: false,
      error_code: "invalid_request",
    })
  })

  it("drops a request whose body stalls, and one whose body only drips", async () => {
    const stalled = await rawConnection()
    stalled.socket.write(
      `${head("POST", "/capture/session/start", { "content-type": "application/json", "content-length": "100" })}\r\n{"session`,
    )
    const drip = await rawConnection()
    drip.socket.write(
      `${head("POST", "/capture/session/start", { "content-type": "application/json", "content-length": "100" })}\r\n`,
    )
    const dripping = setInterval(() => drip.socket.write(" "), 300)
    const stalledAfter = await stalled.closedAfter
    expect(stalledAfter).toBeGreaterThanOrEqual(timeouts.idleTimeoutMs - 50)
    expect(stalledAfter).toBeLessThan(timeouts.idleTimeoutMs + 1_500)
    const dripAfter = await drip.closedAfter
    clearInterval(dripping)
    expect(dripAfter).toBeGreaterThanOrEqual(timeouts.requestTimeoutMs - 50)
    expect(dripAfter).toBeLessThan(timeouts.requestTimeoutMs + 1_500)
  })

  it("lets a steady request run longer than the idle timeout, and keeps WebSockets open", async () => {
    const issued = await api.request("GET", "/collection/default/websocket")
    const socket = new WebSocket(data(issued.body).websocket_url as string)
    let closed = false
    socket.on("close", () => {
      closed = true
    })
    await new Promise((resolve) => socket.once("message", resolve))
    const body = JSON.stringify({ end_user_id: "steady", metadata: { note: "x".repeat(2_000) } })
    const { socket: raw, closedAfter } = await rawConnection()
    let answer = ""
    raw.on("data", (chunk: Buffer) => {
      answer += chunk.toString()
    })
    raw.write(
      `${head("POST", "/collection/default/capture/session", {
        "x-access-token": "sk-test-gateway-key",
        "content-type": "application/json",
        "content-length": String(body.length),
        connection: "close",
      })}\r\n`,
    )
    // 1.4 s in all, longer than the idle timeout, never silent for long.
    const pieces = 7
    const size = Math.ceil(body.length / pieces)
    for (let i = 0; i < pieces; i++) {
      await new Promise((resolve) => setTimeout(resolve, 200))
      raw.write(body.slice(i * size, (i + 1) * size))
    }
    await closedAfter
    expect(answer).toMatch(/^HTTP\/1\.1 200/)
    // The socket has outlived every HTTP timeout and still works.
    expect(closed).toBe(false)
    expect(socket.readyState).toBe(WebSocket.OPEN)
    socket.close()
  })
})

describe("WebSocket client messages", () => {
  it("closes a socket whose client sends a message over the limit (1009), and keeps small ones", async () => {
    const issued = await api.request("GET", "/collection/default/websocket")
    const socket = new WebSocket(data(issued.body).websocket_url as string)
    await new Promise((resolve) => socket.once("message", resolve))
    socket.send("small messages are read and ignored")
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(socket.readyState).toBe(WebSocket.OPEN)
    const closed = new Promise<number>((resolve) => socket.once("close", resolve))
    socket.send(Buffer.alloc(api.gateway.webSocketServerOptions.maxPayload + 1))
    expect(await closed).toBe(1009)
  })
})
