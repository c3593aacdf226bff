import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { DEFAULT_COLLECTION, newCommandId, newSessionId } from "@capture/protocol"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { jetstream } from "@nats-io/jetstream"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { WebSocket, WebSocketServer } from "ws"
import { boundedWebSocketClass } from "../../src/websocket/BoundedWebSocket.js"
import { startTestGateway, TEST_API_KEY, type TestGateway } from "./TestGateway.js"

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

/** Opens the gateway's socket (with the `websocket_url` `token` gets) and collects its messages. */
const listen = async (gateway: TestGateway, token?: string) => {
  const issued = await gateway.request("GET", "/collection/default/websocket", {
    ...(token === undefined ? {} : { token }),
  })
  const url = data(issued.body).websocket_url as string
  expect(url.startsWith(gateway.url.replace("http", "ws"))).toBe(true)
  return open(url)
}

/** Opens a socket at `url` and collects its messages until it closes. */
const open = async (url: string, headers: Record<string, string> = {}) => {
  const socket = new WebSocket(url, { headers })
  const messages: Array<Record<string, unknown>> = []
  let closed: { readonly code: number; readonly at: number } | undefined
  socket.on("message", (raw) => messages.push(JSON.parse(String(raw)) as Record<string, unknown>))
  socket.on("close", (code) => {
    closed = { code, at: Date.now() }
  })
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve())
    socket.once("error", reject)
  })
  const deadline = Date.now() + 5_000
  while (messages.length === 0 && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 20))
  const connectionId = messages[0]?.connection_id as string
  expect(connectionId).toMatch(/^ws-/)
  return { socket, messages, connectionId, closed: () => closed }
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

  it("with follow=collection, hears every session of its account's collection, named or not, and no other", async () => {
    const url = async (gateway: TestGateway, token?: string) =>
      data(
        (
          await gateway.request("GET", "/collection/default/websocket", {
            ...(token === undefined ? {} : { token }),
          })
        ).body,
      ).websocket_url as string
    const follower = await open(`${await url(a)}&follow=collection`)
    const plain = await listen(a)
    const other = await a.gateway.accounts.createAccount("followers elsewhere")
    const { key } = await a.gateway.accounts.createApiKey(other.id)
    const otherAccount = await open(`${await url(a, key)}&follow=collection`)
    // Created on B, naming no socket.
    const created = await b.request("POST", "/collection/default/capture/session", {
      body: { end_user_id: "u" },
    })
    const id = data(created.body).id as string
    await b.request("POST", `/capture/session/${id}/stop`)
    await waitFor(() => follower.messages.some((m) => m.event === "capture_session.stopped"))
    expect(follower.messages.slice(1).map((m) => [m.capture_session_id, m.event])).toEqual([
      [id, "capture_session.created"],
      [id, "capture_session.stopped"],
    ])
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(plain.messages).toHaveLength(1)
    expect(otherAccount.messages).toHaveLength(1)
    for (const socket of [follower, plain, otherAccount]) socket.socket.close()
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
    const foreign = await listen(a, key)
    const ours = await listen(a)
    // Naming their socket is refused at the command...
    expect(
      await a.request("POST", "/collection/default/capture/session", {
        body: { end_user_id: "u", ws_connection_id: foreign.connectionId },
      }),
    ).toMatchObject({ status: 403, body: { error_code: "forbidden", field: "ws_connection_id" } })
    // ...and a session that names it anyway (a command not from the API) is not heard there.
    const account = (await a.gateway.accounts.firstAccount()).account.id
    await a.runtime.host.execute({
      ...createCommand("u", account),
      ws_connection_id: foreign.connectionId,
    })
    const created = await a.request("POST", "/collection/default/capture/session", {
      body: { end_user_id: "u", ws_connection_id: ours.connectionId },
    })
    expect(created.status).toBe(200)
    await waitFor(() => ours.messages.length === 2)
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(foreign.messages).toHaveLength(1)
    foreign.socket.close()
    ours.socket.close()
  })

  it("keeps end users apart: B's session can neither name A's socket nor reach it", async () => {
    const token = async (user: string) =>
      data((await a.request("POST", "/capture/session/token", { body: { user_id: user } })).body)
        .token as string
    const [tokenA, tokenB] = [await token("user-a"), await token("user-b")]
    const socketA = await listen(b, tokenA)
    const backend = await listen(a)
    const sessionOf = async (user: string, ws_connection_id?: string) =>
      a.request("POST", "/collection/default/capture/session", {
        body: { end_user_id: user, ...(ws_connection_id === undefined ? {} : { ws_connection_id }) },
      })
    const forbidden = { status: 403, body: { error_code: "forbidden", field: "ws_connection_id" } }
    // The API key may not point B's session at A's socket.
    expect(await sessionOf("user-b", socketA.connectionId)).toMatchObject(forbidden)
    // B's own token may not either, nor at the account's socket; only at a socket of its own.
    const sessionB = data((await sessionOf("user-b")).body).id as string
    const startB = (ws_connection_id: string) =>
      a.request("POST", "/capture/session/start", {
        token: tokenB,
        body: { session_id: sessionB, channels: [{ channel_id: "display:1" }], ws_connection_id },
      })
    expect(await startB(socketA.connectionId)).toMatchObject(forbidden)
    expect(await startB(backend.connectionId)).toMatchObject(forbidden)
    expect(await startB("ws-made-up")).toMatchObject(forbidden)
    const socketB = await listen(a, tokenB)
    expect((await startB(socketB.connectionId)).status).toBe(200)
    expect(
      await a.request("POST", `/collection/default/capture/session/${sessionB}/export`, {
        body: { ws_connection_id: socketA.connectionId },
      }),
    ).toMatchObject(forbidden)
    // A session of B that names A's socket anyway (a command not from the API) never reaches it.
    const account = (await a.gateway.accounts.firstAccount()).account.id
    const sneaked = createCommand("user-b", account)
    await a.runtime.host.execute({ ...sneaked, ws_connection_id: socketA.connectionId })
    // A's own session, named by the account's key, reaches A's socket: the socket works.
    const sessionA = data((await sessionOf("user-a", socketA.connectionId)).body).id as string
    await waitFor(() => socketA.messages.some((m) => m.capture_session_id === sessionA))
    await waitFor(() => socketB.messages.some((m) => m.event === "capture_session.starting"))
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(socketA.messages.slice(1).map((m) => m.capture_session_id)).toEqual([sessionA])
    for (const socket of [socketA, socketB, backend]) socket.socket.close()
  })
})

/** A CreateSession command for `endUser`, as the API would build it. */
const createCommand = (endUser: string, accountId: string) => ({
  type: "CreateSession" as const,
  command_id: newCommandId(),
  session_id: newSessionId(),
  collection_id: DEFAULT_COLLECTION,
  end_user_id: endUser,
  account_id: accountId,
})

describe("WebSocket credentials", () => {
  it("takes no API key and no API token in the URL; the header takes any credential", async () => {
    for (const credential of [TEST_API_KEY, await clientToken(a)]) {
      const response = await refusedUpgrade(
        `${a.url.replace("http", "ws")}/ws?token=${encodeURIComponent(credential)}`,
      )
      expect(response).toMatchObject({ status: 401, body: { error_code: "unauthorized", field: "token" } })
    }
    const socket = await open(`${a.url.replace("http", "ws")}/ws`, { "x-access-token": TEST_API_KEY })
    expect(socket.connectionId).toMatch(/^ws-/)
    socket.socket.close()
  })

  it("gives a websocket_url whose token opens sockets and nothing else", async () => {
    const issued = await a.request("GET", "/collection/default/websocket")
    const url = new URL(data(issued.body).websocket_url as string)
    const token = url.searchParams.get("token") ?? ""
    expect(token).toMatch(/^st-/)
    expect(
      await a.request("POST", "/collection/default/capture/session", { token, body: { end_user_id: "u" } }),
    ).toMatchObject({ status: 401, body: { error_code: "unauthorized" } })
    const socket = await open(url.href)
    socket.socket.close()
  })

  it("closes the sockets a revoked key opened on every gateway within a second, and only those", async () => {
    const account = (await a.gateway.accounts.firstAccount()).account.id
    const { key, record } = await a.gateway.accounts.createApiKey(account, "to revoke")
    const endUserToken = data(
      (await a.request("POST", "/capture/session/token", { token: key, body: { user_id: "u" } })).body,
    ).token as string
    const doomed = [
      await listen(a, key),
      await listen(b, key),
      await open(`${b.url.replace("http", "ws")}/ws`, { "x-access-token": key }),
      // A token the key issued, and the socket that token opened.
      await listen(b, endUserToken),
    ]
    const bystander = await listen(b)
    const revokedAt = Date.now()
    expect(await a.gateway.accounts.revokeApiKey(record.key_id)).toBe(true)
    await waitFor(() => doomed.every((socket) => socket.closed() !== undefined), 3_000)
    for (const socket of doomed) {
      expect(socket.closed()?.code).toBe(4001)
      expect(socket.closed()?.at ?? Number.POSITIVE_INFINITY).toBeLessThan(revokedAt + 1_000)
    }
    expect((await b.request("POST", "/capture/session/token", { token: key, body: {} })).status).toBe(401)
    expect((await b.request("GET", "/collection/default/websocket", { token: endUserToken })).status).toBe(
      401,
    )
    expect(bystander.closed()).toBeUndefined()
    bystander.socket.close()
  })

  it("closes the sockets of a revoked client token", async () => {
    const token = await clientToken(a)
    const socket = await listen(b, token)
    const revokedAt = Date.now()
    expect(await a.gateway.accounts.revokeClientToken(token)).toBe(true)
    await waitFor(() => socket.closed() !== undefined, 3_000)
    expect(socket.closed()?.at ?? Number.POSITIVE_INFINITY).toBeLessThan(revokedAt + 1_000)
  })

  it("revokes a client token by its id over the API: refused on every gateway, its sockets closed", async () => {
    const issued = await a.request("POST", "/capture/session/token", { body: { end_user_id: "u" } })
    const { token, token_id: tokenId } = data(issued.body) as { token: string; token_id: string }
    expect(tokenId).toMatch(/^tok-/)
    const doomed = [await listen(a, token), await listen(b, token)]
    const bystander = await listen(b, await clientToken(a))
    // A client token may not revoke, not even itself; an unknown or malformed id is refused by name.
    expect(await b.request("DELETE", `/capture/session/token/${tokenId}`, { token })).toMatchObject({
      status: 403,
    })
    expect(await b.request("DELETE", "/capture/session/token/tok-unknown")).toMatchObject({
      status: 404,
      body: { error_code: "token_not_found", field: "token_id" },
    })
    expect(await b.request("DELETE", "/capture/session/token/key-not-a-token")).toMatchObject({
      status: 400,
      body: { error_code: "invalid_field", field: "token_id" },
    })
    const revokedAt = Date.now()
    const revoked = await b.request("DELETE", `/capture/session/token/${tokenId}`)
    expect(revoked).toMatchObject({ status: 200, body: { data: { token_id: tokenId, end_user_id: "u" } } })
    await waitFor(() => doomed.every((socket) => socket.closed() !== undefined), 3_000)
    for (const socket of doomed) {
      expect(socket.closed()?.code).toBe(4001)
      expect(socket.closed()?.at ?? Number.POSITIVE_INFINITY).toBeLessThan(revokedAt + 1_000)
    }
    for (const gateway of [a, b]) {
      expect((await gateway.request("GET", "/collection/default/websocket", { token })).status).toBe(401)
    }
    // Revoking again answers the same revocation.
    expect((await a.request("DELETE", `/capture/session/token/${tokenId}`)).status).toBe(200)
    expect(bystander.closed()).toBeUndefined()
    bystander.socket.close()
  })

  it("never revokes another account's client token", async () => {
    const other = await a.gateway.accounts.createAccount("other")
    const { key } = await a.gateway.accounts.createApiKey(other.id, "other")
    const issued = await a.request("POST", "/capture/session/token", { body: { end_user_id: "u" } })
    const { token, token_id: tokenId } = data(issued.body) as { token: string; token_id: string }
    expect(await a.request("DELETE", `/capture/session/token/${tokenId}`, { token: key })).toMatchObject({
      status: 404,
      body: { error_code: "token_not_found" },
    })
    expect((await a.request("GET", "/collection/default/websocket", { token })).status).toBe(200)
  })
})

/** The answer to a WebSocket handshake the server refuses. */
const refusedUpgrade = (url: string) =>
  new Promise<{ readonly status: number; readonly body: unknown }>((resolve, reject) => {
    const socket = new WebSocket(url)
    socket.once("open", () => reject(new Error("the socket opened")))
    socket.once("unexpected-response", (_request, response) => {
      let text = ""
      response.on("data", (chunk: Buffer) => {
        text += chunk.toString()
      })
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) }))
    })
  })

const clientToken = async (gateway: TestGateway, user = "u") =>
  data((await gateway.request("POST", "/capture/session/token", { body: { user_id: user } })).body)
    .token as string

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
