import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { jetstream } from "@nats-io/jetstream"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { WebSocket, WebSocketServer } from "ws"
import { boundedWebSocketClass } from "../../src/websocket/BoundedWebSocket.js"
import { startTestGateway, type TestGateway } from "./TestGateway.js"

let nats: NatsServerHandle
let a: TestGateway
let b: TestGateway
/** What gateway A logged. */
const logs: Array<string> = []

beforeAll(async () => {
  nats = await startNatsServer()
  ;[a, b] = await Promise.all([
    startTestGateway(nats.url, {
      log: (message) => {
        logs.push(message)
        if (message.startsWith("internal error")) console.error(message)
      },
    }),
    startTestGateway(nats.url),
  ])
}, 60_000)
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()])
  await nats?.stop()
})

const data = (body: Record<string, unknown>) => body.data as Record<string, unknown>

/** Opens the gateway's socket and collects its messages. */
const listen = async (gateway: TestGateway) => {
  const issued = await gateway.request("GET", "/collection/default/websocket")
  const url = data(issued.body).websocket_url as string
  expect(url.startsWith(gateway.url.replace("http", "ws"))).toBe(true)
  const socket = new WebSocket(url)
  const messages: Array<Record<string, unknown>> = []
  socket.on("message", (raw) => messages.push(JSON.parse(String(raw)) as Record<string, unknown>))
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve())
    socket.once("error", reject)
  })
  const deadline = Date.now() + 5_000
  while (messages.length === 0 && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 20))
  const connectionId = messages[0]?.connection_id as string
  expect(connectionId).toMatch(/^ws-/)
  return { socket, messages, connectionId }
}

const waitFor = async (condition: () => boolean, timeoutMs = 5_000) => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting")
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe("WebSocket events across gateway instances", () => {
  it("streams a session's lifecycle to the socket it named, whichever gateway ran the commands", async () => {
    const listener = await listen(a)
    const bystander = await listen(a)
    // Created on B, naming the socket that lives on A.
    const created = await b.request("POST", "/collection/default/capture/session", {
      body: { end_user_id: "u", ws_connection_id: listener.connectionId },
    })
    const id = data(created.body).id as string
    // Read, started and stopped on the other instance.
    expect((await a.request("GET", `/collection/default/capture/session/${id}`)).status).toBe(200)
    await a.request("POST", "/capture/session/start", {
      body: { session_id: id, channels: [{ channel_id: "display:1" }] },
    })
    await b.request("POST", `/capture/session/${id}/stop`)
    await waitFor(() => listener.messages.some((m) => m.event === "capture_session.stopped"))
    const lifecycle = listener.messages.slice(1)
    expect(lifecycle.map((m) => m.event)).toEqual([
      "capture_session.created",
      "capture_session.starting",
      "capture_session.stopped",
    ])
    for (const message of lifecycle) {
      expect(message).toMatchObject({ channel: "capture_session", capture_session_id: id, data: {} })
      expect(message.status).toBe(String(message.event).split(".")[1])
    }
    expect(bystander.messages).toHaveLength(1)
    listener.socket.close()
    bystander.socket.close()
  })

  it("skips a stream message that is not an event, and delivers the next good one", async () => {
    const listener = await listen(a)
    const created = await a.request("POST", "/collection/default/capture/session", {
      body: { end_user_id: "u", ws_connection_id: listener.connectionId },
    })
    const id = data(created.body).id as string
    await a.request("POST", "/capture/session/start", {
      body: { session_id: id, channels: [{ channel_id: "display:1" }] },
    })
    await waitFor(() => listener.messages.some((m) => m.event === "capture_session.starting"))
    // On another subject of the event stream: bytes that are not JSON, and what looks like this
    // session's next event (a failure) but lacks its envelope. Folding it would announce a failure
    // and swallow the real next event, which has the same sequence.
    const topology = a.runtime.topology
    const junk = topology.eventSubject("cap-junk")
    await jetstream(a.nc).publish(junk, "not json {")
    await jetstream(a.nc).publish(
      junk,
      JSON.stringify({
        type: "SessionFailed",
        session_id: id,
        sequence: 3,
        data: { error: { code: "forged", message: "not an event" } },
      }),
    )
    await waitFor(() => logs.filter((line) => line.includes("is not a known event")).length === 2)
    await b.request("POST", `/capture/session/${id}/stop`)
    await waitFor(() => listener.messages.some((m) => m.event === "capture_session.stopped"))
    expect(listener.messages.slice(1).map((m) => m.event)).toEqual([
      "capture_session.created",
      "capture_session.starting",
      "capture_session.stopped",
    ])
    listener.socket.close()
  })

  it("refuses a socket without a valid token, with the failure envelope", async () => {
    const response = await fetch(`${a.url}/ws?token=st-nope`)
    expect(response.status).toBe(401)
    expect(await response.json()).toMatchObject({ success: false, error_code: "unauthorized" })
  })

  it("does not send one account's events to another account's connection id", async () => {
    const other = await a.gateway.accounts.createAccount("other")
    const { key } = await a.gateway.accounts.createApiKey(other.id)
    const issued = await a.request("GET", "/collection/default/websocket", { token: key })
    const foreign = new WebSocket(data(issued.body).websocket_url as string)
    const foreignMessages: Array<Record<string, unknown>> = []
    foreign.on("message", (raw) => foreignMessages.push(JSON.parse(String(raw)) as Record<string, unknown>))
    await waitFor(() => foreignMessages.length === 1)
    const ours = await listen(a)
    // Our sessions name their connection and ours: only ours hears.
    for (const ws_connection_id of [foreignMessages[0]?.connection_id, ours.connectionId]) {
      const created = await a.request("POST", "/collection/default/capture/session", {
        body: { end_user_id: "u", ws_connection_id },
      })
      expect(created.status).toBe(200)
    }
    await waitFor(() => ours.messages.length === 2)
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(foreignMessages).toHaveLength(1)
    foreign.close()
    ours.socket.close()
  })
})

describe("BoundedWebSocket", () => {
  it("drops and counts messages for a client that stops reading, keeping the buffer bounded", async () => {
    const limit = 64 * 1024
    const bounded = boundedWebSocketClass({ maxBufferedBytes: limit, pingIntervalMs: 60_000 })
    const http = createServer()
    const wss = new WebSocketServer({ server: http, WebSocket: bounded.WebSocket as never })
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve))
    const port = (http.address() as AddressInfo).port
    const serverSide = new Promise<WebSocket>((resolve) => wss.once("connection", resolve))
    const client = new WebSocket(`ws://127.0.0.1:${port}`)
    await new Promise((resolve) => client.once("open", resolve))
    const socket = await serverSide
    // The client stops reading: its TCP window fills and the server's buffer would grow.
    ;(client as unknown as { _socket: { pause(): void } })._socket.pause()
    const chunk = "x".repeat(16 * 1024)
    let maxBuffered = 0
    for (let i = 0; i < 2_000; i++) {
      socket.send(chunk)
      maxBuffered = Math.max(maxBuffered, socket.bufferedAmount)
      if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    expect(bounded.stats.dropped).toBeGreaterThan(0)
    expect(maxBuffered).toBeLessThanOrEqual(limit + chunk.length + 64)
    client.terminate()
    wss.close()
    http.close()
  })

  it("terminates a peer that stops answering pings", async () => {
    const bounded = boundedWebSocketClass({ maxBufferedBytes: 1024, pingIntervalMs: 100 })
    const http = createServer()
    const wss = new WebSocketServer({ server: http, WebSocket: bounded.WebSocket as never })
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve))
    const port = (http.address() as AddressInfo).port
    const serverSide = new Promise<WebSocket>((resolve) => wss.once("connection", resolve))
    const client = new WebSocket(`ws://127.0.0.1:${port}`, { autoPong: false })
    await new Promise((resolve) => client.once("open", resolve))
    const socket = await serverSide
    const closed = new Promise((resolve) => socket.once("close", resolve))
    await closed
    expect(bounded.stats.reaped).toBe(1)
    client.terminate()
    wss.close()
    http.close()
  })
})
