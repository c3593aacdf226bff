import { type NatsClusterHandle, startNatsCluster } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { WebSocket } from "ws"
import { startTestGateway, type TestGateway } from "./TestGateway.js"

let cluster: NatsClusterHandle
let a: TestGateway
let b: TestGateway

beforeAll(async () => {
  cluster = await startNatsCluster({ size: 3 })
  // Each gateway talks to a different node; streams and buckets are replicated 3 ways.
  a = await startTestGateway([cluster.urls[0] ?? ""], { replicas: 3 })
  b = await startTestGateway([cluster.urls[1] ?? ""], { replicas: 3 })
}, 120_000)
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()])
  await cluster?.stop()
})

const data = (body: Record<string, unknown>) => body.data as Record<string, unknown>

describe("two gateways on a 3-node JetStream cluster", () => {
  it("reads, stops and streams on one a session created on the other", async () => {
    const issued = await a.request("GET", "/collection/default/websocket")
    const socket = new WebSocket(data(issued.body).websocket_url as string)
    const messages: Array<Record<string, unknown>> = []
    socket.on("message", (raw) => messages.push(JSON.parse(String(raw)) as Record<string, unknown>))
    for (let i = 0; messages.length === 0; i++) {
      if (i > 200) throw new Error("no connection message")
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    const created = await b.request("POST", "/collection/default/capture/session", {
      body: { end_user_id: "u", ws_connection_id: messages[0]?.connection_id },
    })
    expect(created.status).toBe(200)
    const id = data(created.body).id as string
    expect(await a.request("GET", `/collection/default/capture/session/${id}`)).toMatchObject({
      status: 200,
      body: { data: { id, status: "created" } },
    })
    expect(
      (
        await a.request("POST", "/capture/session/start", {
          body: { session_id: id, channels: [{ channel_id: "mic:default" }] },
        })
      ).status,
    ).toBe(200)
    const stopped = await b.request("POST", `/capture/session/${id}/stop`)
    expect(data(stopped.body).status).toBe("stopped")
    for (let i = 0; !messages.some((m) => m.event === "capture_session.stopped"); i++) {
      if (i > 400) throw new Error(`events so far: ${JSON.stringify(messages)}`)
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    expect(messages.slice(1).map((m) => m.event)).toEqual([
      "capture_session.created",
      "capture_session.starting",
      "capture_session.stopped",
    ])
    socket.close()
  }, 60_000)
})
