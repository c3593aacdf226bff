import { request as httpRequest, type IncomingMessage } from "node:http"
import type { AddressInfo } from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { createHoldingServer } from "../src/serve/HoldingServer.js"

const servers: Array<ReturnType<typeof createHoldingServer>> = []
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve))
})

const listening = async () => {
  const server = createHoldingServer()
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return { server, port: (server.address() as AddressInfo).port }
}

const get = (port: number, path: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, path }, (res) => {
      let body = ""
      res.on("data", (chunk: Buffer) => {
        body += chunk.toString()
      })
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on("error", reject)
    req.end()
  })

describe("the holding HTTP server", () => {
  it("answers requests that arrived before the handler was attached, in order, and later ones too", async () => {
    const { server, port } = await listening()
    const early = [get(port, "/first"), get(port, "/second")]
    // Both requests reach the server (and are held) well before the handler exists.
    await new Promise((resolve) => setTimeout(resolve, 200))
    const seen: Array<string> = []
    server.on("request", (req: IncomingMessage, res) => {
      seen.push(req.url ?? "")
      res.end(`handled ${req.url}`)
    })
    expect(await Promise.all(early)).toEqual([
      { status: 200, body: "handled /first" },
      { status: 200, body: "handled /second" },
    ])
    expect(await get(port, "/later")).toEqual({ status: 200, body: "handled /later" })
    expect(seen.sort()).toEqual(["/first", "/later", "/second"])
  })

  it("hands an early WebSocket upgrade to the upgrade handler attached later", async () => {
    const { server, port } = await listening()
    const upgraded = new Promise<string>((resolve, reject) => {
      const req = httpRequest({
        host: "127.0.0.1",
        port,
        path: "/ws",
        headers: { connection: "Upgrade", upgrade: "websocket" },
      })
      req.on("upgrade", (res) => {
        res.socket.destroy()
        resolve(String(res.statusCode))
      })
      req.on("error", reject)
      req.end()
    })
    await new Promise((resolve) => setTimeout(resolve, 200))
    server.on("upgrade", (_req: IncomingMessage, socket) => {
      socket.end("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    })
    expect(await upgraded).toBe("101")
  })
})
