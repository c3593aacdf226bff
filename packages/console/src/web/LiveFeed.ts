/**
 * Live updates: the collection's WebSocket (`GET /collection/{cid}/websocket` hands out a URL with
 * a short-lived token; `&follow=collection` asks for every session of the collection, not only
 * those that name the socket). Reopened with a fresh URL when it drops.
 */
import { api, path } from "./Api.js"

/** A message from the socket: a session's lifecycle event, or an AI result (`transcript`, …). */
export interface LiveMessage {
  readonly channel: string
  readonly event?: string
  readonly capture_session_id?: string
  readonly rtstream_id?: string
  readonly status?: string
  readonly data?: unknown
}

export type LiveState = "connecting" | "live" | "off"

export class LiveFeed {
  private socket: WebSocket | undefined
  private stopped = false
  private retry: ReturnType<typeof setTimeout> | undefined
  private readonly listeners = new Set<(message: LiveMessage) => void>()

  constructor(
    private readonly collectionId: string,
    private readonly onState: (state: LiveState) => void,
  ) {}

  /** Calls `listener` with each message until the returned function is called. */
  subscribe(listener: (message: LiveMessage) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  start(): void {
    this.stopped = false
    void this.open()
  }

  stop(): void {
    this.stopped = true
    clearTimeout(this.retry)
    this.socket?.close()
    this.socket = undefined
    this.onState("off")
  }

  private async open(): Promise<void> {
    this.onState("connecting")
    try {
      const { websocket_url } = await api<{ websocket_url: string }>(
        path`/collection/${this.collectionId}/websocket`,
      )
      if (this.stopped) return
      const socket = new WebSocket(`${websocket_url}&follow=collection`)
      this.socket = socket
      socket.onmessage = (event) => {
        const message = JSON.parse(String(event.data)) as LiveMessage & { connection_id?: string }
        if (message.connection_id !== undefined) {
          this.onState("live")
          return
        }
        for (const listener of this.listeners) listener(message)
      }
      socket.onclose = () => {
        if (this.socket === socket) this.reopenLater()
      }
    } catch {
      this.reopenLater()
    }
  }

  private reopenLater(): void {
    this.socket = undefined
    if (this.stopped) return
    this.onState("off")
    this.retry = setTimeout(() => void this.open(), 2000)
  }
}
