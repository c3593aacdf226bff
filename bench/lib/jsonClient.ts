/**
 * A small JSON-over-HTTP client on node:http with a keep-alive Agent: what a real API client
 * holds open, and cheaper per request than fetch (undici), so the client spends less of the
 * CPU it shares with the server under test.
 */
import { Agent, type IncomingMessage, request } from "node:http"

/** A parsed response: status and JSON body (`{ unparsed }` when the body is not JSON). */
export interface JsonResponse {
  readonly status: number
  readonly body: Record<string, unknown>
}

/** Reads a whole response: its status and JSON body (`{ unparsed }` when the body is not JSON). */
export const readJsonResponse = (res: IncomingMessage): Promise<JsonResponse> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    res.on("data", (chunk: Buffer) => chunks.push(chunk))
    res.on("error", reject)
    res.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8")
      let parsed: Record<string, unknown>
      try {
        parsed = JSON.parse(text) as Record<string, unknown>
      } catch {
        parsed = { unparsed: text }
      }
      resolve({ status: res.statusCode ?? 0, body: parsed })
    })
  })

/** The `data` of a successful answer; anything else stops the benchmark. */
export const accepted = (label: string, response: JsonResponse): Record<string, unknown> => {
  const data = response.body.data
  if (response.status !== 200 || response.body.success !== true || typeof data !== "object" || data === null)
    throw new Error(`${label} answered ${response.status}: ${JSON.stringify(response.body)}`)
  return data as Record<string, unknown>
}

/** A string field of an answer's `data`; anything else stops the benchmark. */
export const stringField = (data: Record<string, unknown>, field: string): string => {
  const value = data[field]
  if (typeof value !== "string") throw new Error(`answer without ${field}: ${JSON.stringify(data)}`)
  return value
}

export interface JsonClient {
  /** Sends `body` as JSON (none when undefined) and resolves once the whole response is read. */
  readonly send: (method: string, path: string, body?: unknown) => Promise<JsonResponse>
  /** Closes the kept-alive sockets. */
  readonly close: () => void
}

/** A client for `baseUrl` sending `headers` on every request, with at most `maxSockets` open. */
export const makeJsonClient = (
  baseUrl: string,
  headers: Readonly<Record<string, string>>,
  options: { readonly maxSockets: number; readonly timeoutMs?: number },
): JsonClient => {
  const url = new URL(baseUrl)
  const agent = new Agent({ keepAlive: true, maxSockets: options.maxSockets })
  const timeoutMs = options.timeoutMs ?? 30_000
  const send = (method: string, path: string, body?: unknown) =>
    new Promise<JsonResponse>((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body)
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          method,
          path,
          agent,
          headers:
            payload === undefined
              ? headers
              : {
                  ...headers,
                  "content-type": "application/json",
                  "content-length": Buffer.byteLength(payload),
                },
        },
        (res) => readJsonResponse(res).then(resolve, reject),
      )
      req.setTimeout(timeoutMs, () =>
        req.destroy(new Error(`${method} ${path}: no answer in ${timeoutMs} ms`)),
      )
      req.on("error", reject)
      req.end(payload)
    })
  return { send, close: () => agent.destroy() }
}
