/**
 * An `http.Server` that holds requests arriving before the application is attached.
 *
 * effect's NodeHttpServer listens first and attaches its `request` / `upgrade` handlers a moment
 * later; a request in between would have no handler and never be answered. This server keeps such
 * requests (and WebSocket upgrades) and hands them to the first handler attached, in arrival order.
 */
import type { Server, ServerOptions } from "node:http"
import { createServer } from "node:http"

/** Holds `event`'s arguments until the first other listener of it is attached, then replays them to it. */
const holdUntilHandled = (server: Server, event: "request" | "upgrade"): void => {
  const held: Array<ReadonlyArray<unknown>> = []
  const hold = (...args: ReadonlyArray<unknown>) => {
    held.push(args)
  }
  server.on(event, hold)
  const onNewListener = (name: string | symbol, listener: (...args: Array<unknown>) => void) => {
    if (name !== event || listener === hold) return
    server.off(event, hold)
    server.off("newListener", onNewListener)
    // After the caller's `on` returns, so the handler is in place for what comes next too.
    queueMicrotask(() => {
      for (const args of held.splice(0)) listener(...args)
    })
  }
  server.on("newListener", onNewListener)
}

/** A plain `http.Server` that holds early requests and upgrades until their handler is attached. */
export const createHoldingServer = (options: ServerOptions = {}): Server => {
  const server = createServer(options)
  holdUntilHandled(server, "request")
  holdUntilHandled(server, "upgrade")
  return server
}
