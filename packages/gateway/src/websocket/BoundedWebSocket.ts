/**
 * A server-side `ws` WebSocket that keeps a slow client from costing the server: it pings on an
 * interval and terminates a peer that missed a pong, and it drops (and counts) messages while the
 * socket's unsent buffer is over a limit instead of letting it grow. What it sends in one turn of
 * the event loop goes out in one write (its TCP socket corked until the turn ends): a socket
 * following a busy collection gets many messages at once, each a system call otherwise. Handed to
 * the HTTP server as `ws`'s `WebSocket` class option, so every upgraded socket is one.
 */
import type { Socket } from "node:net"
import { WebSocket } from "ws"

export interface WebSocketLimits {
  /** Unsent bytes above which new messages are dropped. */
  readonly maxBufferedBytes: number
  /** Largest message a client may send; a larger one closes the socket (1009). Default 64 KiB. */
  readonly maxMessageBytes?: number | undefined
  /** How often to ping; a peer that has not answered the previous ping by then is terminated. */
  readonly pingIntervalMs: number
}

/** Counters shared by every socket of a class. */
export interface WebSocketStats {
  dropped: number
  reaped: number
}

/** The sockets by their underlying TCP socket, so a route can find the one it upgraded. */
export const socketsByConnection = new WeakMap<Socket, BoundedWebSocketInstance>()

export interface BoundedWebSocketInstance extends WebSocket {
  readonly droppedMessages: number
}

/** A `WebSocket` subclass with the given limits, and the stats its instances update. */
export const boundedWebSocketClass = (
  limits: WebSocketLimits,
): { readonly WebSocket: typeof WebSocket; readonly stats: WebSocketStats } => {
  const stats: WebSocketStats = { dropped: 0, reaped: 0 }
  class BoundedWebSocket extends WebSocket implements BoundedWebSocketInstance {
    droppedMessages = 0
    alive = true
    heartbeat: NodeJS.Timeout | undefined
    corked: Socket | undefined

    override send(data: unknown, options?: unknown, callback?: unknown): void {
      if (this.bufferedAmount > limits.maxBufferedBytes) {
        this.droppedMessages++
        stats.dropped++
        const done = typeof options === "function" ? options : callback
        if (typeof done === "function") done()
        return
      }
      this.corkForTurn()
      // biome-ignore lint/suspicious/noExplicitAny: forwarding ws's overloaded signature unchanged.
      ;(super.send as any)(data, options, callback)
    }

    /** Holds this turn's writes until it ends (corked bytes still count in `bufferedAmount`). */
    corkForTurn(): void {
      // biome-ignore lint/suspicious/noExplicitAny: `_socket` is ws's own field for the TCP socket.
      const socket: Socket | undefined = (this as any)._socket
      if (this.corked !== undefined || socket === undefined || this.readyState !== this.OPEN) return
      this.corked = socket
      socket.cork()
      setImmediate(() => {
        this.corked = undefined
        socket.uncork()
      })
    }

    /** Called by `ws` once the upgrade completes; the socket is live from here. */
    setSocket(socket: Socket, head: Buffer, options: unknown): void {
      // biome-ignore lint/suspicious/noExplicitAny: setSocket is internal to ws and untyped.
      ;(WebSocket.prototype as any).setSocket.call(this, socket, head, options)
      socketsByConnection.set(socket, this)
      this.on("pong", () => {
        this.alive = true
      })
      this.heartbeat = setInterval(() => {
        if (!this.alive) {
          stats.reaped++
          this.terminate()
          return
        }
        this.alive = false
        this.ping()
      }, limits.pingIntervalMs)
      this.heartbeat.unref()
      this.once("close", () => clearInterval(this.heartbeat))
    }
  }
  return { WebSocket: BoundedWebSocket, stats }
}
