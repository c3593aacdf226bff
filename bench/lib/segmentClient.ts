/**
 * Segment uploads as the recorder sends them (`PUT …/segments/{index}` with the MPEG-TS bytes and
 * the segment headers), on node:http with a keep-alive Agent, the same for the gateway and the
 * raw baseline.
 */
import { Agent, request } from "node:http"
import { type JsonResponse, readJsonResponse } from "./jsonClient.js"

export interface SegmentClient {
  /** PUTs `body` to `path` and resolves once the whole answer is read. */
  readonly put: (
    path: string,
    body: Buffer,
    headers: Readonly<Record<string, string>>,
  ) => Promise<JsonResponse>
  /** Uploads sent again because the kept-alive socket they went out on had been closed by the server. */
  readonly retries: () => number
  /** Closes the kept-alive sockets. */
  readonly close: () => void
}

/** An error of a request that went out on a kept-alive socket the server had just closed. */
class StaleSocket extends Error {}

/** A client for `baseUrl` sending `headers` on every request, with at most `maxSockets` open. */
export const makeSegmentClient = (
  baseUrl: string,
  headers: Readonly<Record<string, string>>,
  options: { readonly maxSockets: number; readonly timeoutMs?: number },
): SegmentClient => {
  const url = new URL(baseUrl)
  const agent = new Agent({ keepAlive: true, maxSockets: options.maxSockets })
  const timeoutMs = options.timeoutMs ?? 120_000
  let retries = 0
  const send = (path: string, body: Buffer, segmentHeaders: Readonly<Record<string, string>>) =>
    new Promise<JsonResponse>((resolve, reject) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          method: "PUT",
          path,
          agent,
          headers: {
            ...headers,
            ...segmentHeaders,
            "content-type": "video/mp2t",
            "content-length": body.length,
          },
        },
        (res) => readJsonResponse(res).then(resolve, reject),
      )
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`PUT ${path}: no answer in ${timeoutMs} ms`)))
      req.on("error", (error: NodeJS.ErrnoException) => {
        const message = `PUT ${baseUrl}${path}: ${error.message}`
        // The server closes an idle kept-alive socket (Node: after 5 s) and the agent may hand it
        // out just before it sees the close; node's documentation says to retry then.
        const stale = req.reusedSocket && (error.code === "ECONNRESET" || error.code === "EPIPE")
        reject(stale ? new StaleSocket(message) : new Error(message))
      })
      req.end(body)
    })
  const put = async (path: string, body: Buffer, segmentHeaders: Readonly<Record<string, string>>) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await send(path, body, segmentHeaders)
      } catch (error) {
        if (!(error instanceof StaleSocket) || attempt >= 3) throw error
        retries++
      }
    }
  }
  return { put, retries: () => retries, close: () => agent.destroy() }
}
