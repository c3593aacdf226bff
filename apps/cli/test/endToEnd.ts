/**
 * End-to-end helpers: a `capture serve` child process on a NATS server of the suite, its HTTP API
 * with an API key, a loopback receiver for the session's webhooks (signatures checked with the
 * protocol's `verifyWebhook`) and a WebSocket listener for the same lifecycle events.
 */
import { once } from "node:events"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import {
  decodeUnknown,
  newWebhookSecret,
  verifyWebhook,
  type WebhookEnvelope,
  WebhookEnvelope as WebhookEnvelopeSchema,
  type WebhookSecret,
  WebSocketMessage,
} from "@capture/protocol"
import { getFreePort, LOOPBACK } from "@capture/testkit"
import { Result } from "effect"
import { WebSocket } from "ws"
import { type ServeProcess, startServe } from "./cli.js"

/** Polls `probe` until `done` accepts its value; throws with the last value after `timeoutMs`. */
export const pollUntil = async <A>(
  what: string,
  probe: () => Promise<A>,
  done: (value: A) => boolean,
  { timeoutMs = 60_000, intervalMs = 200 } = {},
): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (done(value)) return value
    if (Date.now() > deadline) {
      throw new Error(`${what}: not reached within ${timeoutMs} ms (last: ${JSON.stringify(value)})`)
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** A `capture serve` and how to call it. */
export interface CaptureServer {
  readonly base: string
  readonly apiKey: string
  readonly webhookSecret: WebhookSecret
  readonly process: ServeProcess
  /** A JSON API call with the API key; resolves with the status and the parsed envelope. */
  readonly call: (
    method: "GET" | "POST" | "PATCH",
    path: string,
    body?: object,
  ) => Promise<{ readonly status: number; readonly body: Record<string, unknown> }>
  /** A call that must answer 200; resolves with its `data`. */
  readonly data: (
    method: "GET" | "POST" | "PATCH",
    path: string,
    body?: object,
  ) => Promise<Record<string, unknown>>
}

/** Starts `capture serve` against `natsUrl`: webhooks to 127.0.0.1 allowed, retried after 1 s. */
export const startCaptureServer = async (
  natsUrl: string,
  options: {
    readonly apiKey?: string
    readonly env?: Record<string, string>
    /** More `serve` arguments (e.g. `--role gateway`). */
    readonly args?: ReadonlyArray<string>
  } = {},
): Promise<CaptureServer> => {
  const port = await getFreePort()
  const base = `http://${LOOPBACK}:${port}`
  const apiKey = options.apiKey ?? "sk-end-to-end-test-key-0123456789"
  const webhookSecret = newWebhookSecret()
  const process = startServe(["--port", String(port), ...(options.args ?? [])], {
    NATS_URL: natsUrl,
    CAPTURE_API_KEY: apiKey,
    CAPTURE_WEBHOOK_SECRET: webhookSecret,
    CAPTURE_WEBHOOK_ALLOW_HOSTS: LOOPBACK,
    CAPTURE_WEBHOOK_SCHEDULE: "1s,1s,1s",
    ...options.env,
  })
  await process.waitFor(/\[capture\] ready/, 60_000)
  const call = async (method: "GET" | "POST" | "PATCH", path: string, body?: object) => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: {
        "x-access-token": apiKey,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    return { status: response.status, body: (await response.json()) as Record<string, unknown> }
  }
  const data = async (method: "GET" | "POST" | "PATCH", path: string, body?: object) => {
    const answer = await call(method, path, body)
    if (answer.status !== 200) {
      throw new Error(`${method} ${path} answered ${answer.status}: ${JSON.stringify(answer.body)}`)
    }
    return answer.body.data as Record<string, unknown>
  }
  return { base, apiKey, webhookSecret, process, call, data }
}

/** A webhook as received: the decoded envelope and whether its signature checked out. */
export interface ReceivedWebhook {
  readonly envelope: WebhookEnvelope
  readonly verified: boolean
  readonly webhookId: string
}

/** An HTTP server on 127.0.0.1 that answers 204 to every POST and keeps what it got. */
export interface WebhookReceiver {
  readonly url: string
  readonly received: ReadonlyArray<ReceivedWebhook>
  /** Bodies that did not decode as a `WebhookEnvelope` (should stay empty). */
  readonly undecodable: ReadonlyArray<string>
  readonly close: () => Promise<void>
}

const decodeEnvelope = decodeUnknown(WebhookEnvelopeSchema)
const decodeSocketMessage = decodeUnknown(WebSocketMessage)

export const startWebhookReceiver = async (secret: WebhookSecret): Promise<WebhookReceiver> => {
  const received: ReceivedWebhook[] = []
  const undecodable: string[] = []
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8")
      const header = (name: string) => {
        const value = request.headers[name]
        return Array.isArray(value) ? value.join(" ") : (value ?? "")
      }
      const webhookId = header("webhook-id")
      const verified = verifyWebhook(
        secret,
        { id: webhookId, timestamp: header("webhook-timestamp"), signature: header("webhook-signature") },
        raw,
      )
      let decoded: Result.Result<WebhookEnvelope, unknown>
      try {
        decoded = decodeEnvelope(JSON.parse(raw))
      } catch (error) {
        decoded = Result.fail(error)
      }
      if (Result.isSuccess(decoded)) received.push({ envelope: decoded.success, verified, webhookId })
      else undecodable.push(raw)
      response.writeHead(204).end()
    })
  })
  server.listen(0, LOOPBACK)
  await once(server, "listening")
  const { port } = server.address() as AddressInfo
  return {
    url: `http://${LOOPBACK}:${port}/hooks`,
    received,
    undecodable,
    close: () => {
      server.closeAllConnections()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}

/** A lifecycle event as the WebSocket delivered it. */
export type SocketEvent = Extract<WebSocketMessage, { readonly channel: "capture_session" }>

/** A socket opened with the URL `GET /collection/default/websocket` hands out. */
export interface SocketListener {
  readonly connectionId: string
  readonly events: ReadonlyArray<SocketEvent>
  /** Messages that did not decode as a `WebSocketMessage` (should stay empty). */
  readonly undecodable: ReadonlyArray<string>
  readonly close: () => void
}

export const listenOnWebSocket = async (server: CaptureServer): Promise<SocketListener> => {
  const url = (await server.data("GET", "/collection/default/websocket")).websocket_url as string
  if (!url.startsWith(`ws://${LOOPBACK}:`)) throw new Error(`unexpected websocket_url ${url}`)
  const socket = new WebSocket(url)
  const events: SocketEvent[] = []
  const undecodable: string[] = []
  let connectionId: string | undefined
  const named = new Promise<void>((resolve, reject) => {
    socket.on("message", (raw) => {
      const text = String(raw)
      let decoded: Result.Result<WebSocketMessage, unknown>
      try {
        decoded = decodeSocketMessage(JSON.parse(text))
      } catch (error) {
        decoded = Result.fail(error)
      }
      if (Result.isFailure(decoded)) {
        undecodable.push(text)
        return
      }
      const message = decoded.success
      if ("connection_id" in message) {
        connectionId = message.connection_id
        resolve()
      } else if ("channel" in message && message.channel === "capture_session") {
        events.push(message)
      }
    })
    socket.once("error", reject)
    socket.once("close", () => reject(new Error("the socket closed before naming its connection")))
  })
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no connection_id from ${url} within 15 s`)), 15_000)
  })
  try {
    await Promise.race([named, timeout])
  } catch (error) {
    socket.terminate()
    throw error
  } finally {
    clearTimeout(timer)
  }
  return {
    connectionId: connectionId ?? "",
    events,
    undecodable,
    close: () => socket.terminate(),
  }
}
