/** A webhook receiver on 127.0.0.1 that records every POST and answers what the test says. */
import { createServer, type IncomingHttpHeaders, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { LOOPBACK } from "@capture/testkit"

/** One POST as received. */
export interface Received {
  readonly headers: IncomingHttpHeaders
  readonly body: string
  readonly envelope: { readonly id: string; readonly event: string; readonly capture_session_id: string }
}

/** Decides the answer to a POST: a status code, after any delay the function takes. */
export type Responder = (received: Received) => number | Promise<number>

export class Receiver {
  readonly received: Array<Received> = []
  respond: Responder

  private constructor(
    private readonly server: Server,
    readonly port: number,
    respond: Responder,
  ) {
    this.respond = respond
  }

  /** Listens on `port` (default: any free one). */
  static async start(respond: Responder = () => 204, port = 0): Promise<Receiver> {
    let receiver: Receiver | undefined
    const server = createServer((request, response) => {
      const chunks: Array<Buffer> = []
      request.on("data", (chunk: Buffer) => chunks.push(chunk))
      request.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8")
        const received: Received = { headers: request.headers, body, envelope: JSON.parse(body) }
        receiver?.received.push(received)
        Promise.resolve(receiver?.respond(received) ?? 204).then(
          (status) => response.writeHead(status).end(),
          () => response.writeHead(500).end(),
        )
      })
    })
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject)
      server.listen(port, LOOPBACK, resolve)
    })
    receiver = new Receiver(server, (server.address() as AddressInfo).port, respond)
    return receiver
  }

  get url(): string {
    return `http://${LOOPBACK}:${this.port}/hooks`
  }

  /** Event names received for a session, in arrival order (duplicates included). */
  eventsOf(sessionId: string): ReadonlyArray<string> {
    return this.received
      .filter((r) => r.envelope.capture_session_id === sessionId)
      .map((r) => r.envelope.event)
  }

  async close(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
