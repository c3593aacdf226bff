/**
 * An `http.Server` that holds requests arriving before the application is attached.
 *
 * effect's NodeHttpServer listens first and attaches its `request` / `upgrade` handlers a moment
 * later; a request in between would have no handler and never be answered. This server keeps such
 * requests (and WebSocket upgrades) and hands them to the first handler attached, in arrival order.
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http"
import { createServer } from "node:http"
import type { Duplex } from "node:stream"

type RequestListener = (request: IncomingMessage, response: ServerResponse) => void
type UpgradeListener = (request: IncomingMessage, socket: Duplex, head: Buffer) => void

/** A plain `http.Server` that holds early requests and upgrades until their handler is attached. */
export const createHoldingServer = (): Server => {
  const server = createServer()
  const heldRequests: Array<[IncomingMessage, ServerResponse]> = []
  const heldUpgrades: Array<[IncomingMessage, Duplex, Buffer]> = []
  const holdRequest: RequestListener = (request, response) => {
    heldRequests.push([request, response])
  }
  const holdUpgrade: UpgradeListener = (request, socket, head) => {
    heldUpgrades.push([request, socket, head])
  }
  server.on("request", holdRequest)
  server.on("upgrade", holdUpgrade)
  server.on("newListener", (event: string | symbol, listener: (...args: Array<never>) => void) => {
    if (
      event === "request" &&
      listener !== holdRequest &&
      server.listeners("request").includes(holdRequest)
    ) {
      server.off("request", holdRequest)
      const handle = listener as RequestListener
      // After the caller's `on` returns, so the handler is in place for what comes next too.
      queueMicrotask(() => {
        for (const [request, response] of heldRequests.splice(0)) handle(request, response)
      })
    } else if (
      event === "upgrade" &&
      listener !== holdUpgrade &&
      server.listeners("upgrade").includes(holdUpgrade)
    ) {
      server.off("upgrade", holdUpgrade)
      const handle = listener as UpgradeListener
      queueMicrotask(() => {
        for (const [request, socket, head] of heldUpgrades.splice(0)) handle(request, socket, head)
      })
    }
  })
  return server
}
