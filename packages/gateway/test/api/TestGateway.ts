/** A real gateway on a real HTTP server (127.0.0.1, free port) against a given NATS, for API tests. */
import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { createServer } from "node:http"
import { join } from "node:path"
import { MediaStore } from "@capture/media"
import { type SessionRuntime, startSessionRuntime } from "@capture/session-actor"
import { getFreePort } from "@capture/testkit"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Effect, Fiber, Layer } from "effect"
import { HttpRouter } from "effect/http"
import {
  answerClientErrorsWithEnvelope,
  applyHttpTimeouts,
  DEFAULT_HTTP_TIMEOUTS,
  type Gateway,
  type GatewayOptions,
  gatewayRoutes,
  type HttpTimeouts,
  httpServerOptions,
  startGateway,
} from "../../src/index.js"

export interface TestGateway {
  readonly url: string
  readonly gateway: Gateway
  readonly runtime: SessionRuntime
  readonly nc: NatsConnection
  /** Sends a request with the API key (or `token`) and parses the JSON envelope. */
  readonly request: (
    method: string,
    path: string,
    options?: { readonly body?: unknown; readonly token?: string | null; readonly raw?: string },
  ) => Promise<{ readonly status: number; readonly body: Record<string, unknown> }>
  readonly stop: () => Promise<void>
}

/** `count` real one-second MPEG-TS segments of one small video stream, encoded into `dir`. */
export const encodeTestSegments = (dir: string, count: number): Array<Uint8Array> => {
  execFileSync(process.env.FFMPEG_PATH ?? "ffmpeg", [
    ...[
      "-hide_banner",
      "-loglevel",
      "error",
      "-f",
      "lavfi",
      "-i",
      `testsrc2=size=160x120:rate=10:duration=${count}`,
    ],
    ...["-c:v", "libx264", "-g", "10", "-f", "segment", "-segment_time", "1", "-segment_format", "mpegts"],
    join(dir, "%03d.ts"),
  ])
  return Array.from(
    { length: count },
    (_, i) => new Uint8Array(readFileSync(join(dir, `${String(i).padStart(3, "0")}.ts`))),
  )
}

export const TEST_API_KEY = "sk-test-gateway-key"

/**
 * Callback URL hosts in tests: every name is refused without asking DNS, so a generated URL
 * (say fast-check's `webUrl()`) is never looked up, let alone called. Receivers use 127.0.0.1.
 */
export const refuseEveryName = async (hostname: string): Promise<never> => {
  throw Object.assign(new Error(`tests resolve no names (${hostname})`), { code: "ENOTFOUND" })
}

/** The options every test gateway starts with (tests override some). */
export const gatewayOptions = (url: string): GatewayOptions => ({
  publicUrl: url,
  maxJsonBytes: 64 * 1024,
  maxSegmentBytes: 4 * 1024 * 1024,
  defaultTokenSeconds: 3600,
  webhookAllowHosts: "127.0.0.1",
  webhookResolve: refuseEveryName,
  webSocket: { maxBufferedBytes: 256 * 1024, pingIntervalMs: 30_000 },
  seedApiKey: TEST_API_KEY,
  log: (message) => {
    if (message.startsWith("internal error")) console.error(message)
  },
})

const httpServer = (timeouts: HttpTimeouts) => {
  const server = createServer(httpServerOptions(timeouts))
  // As `capture serve` keeps them (65 s), not Node's 5 s: on a loaded machine a test that pauses
  // longer between requests would otherwise send its next one into a socket the server is
  // closing, and read ECONNRESET.
  server.keepAliveTimeout = 65_000
  applyHttpTimeouts(server, timeouts)
  answerClientErrorsWithEnvelope(server)
  return server
}

export const startTestGateway = async (
  servers: string | ReadonlyArray<string>,
  options: Partial<GatewayOptions> & {
    readonly replicas?: number
    readonly silenceTimeoutMs?: number
    /** After an automatic stop, how long media recorded before it is still taken (default: none). */
    readonly lateMediaGraceMs?: number
    /** The HTTP server's slow-client timeouts (default: `capture serve`'s). */
    readonly httpTimeouts?: HttpTimeouts
  } = {},
): Promise<TestGateway> => {
  const nc = await connect({
    servers: servers as string | string[],
    maxReconnectAttempts: -1,
    reconnectTimeWait: 100,
  })
  const replicas = options.replicas === undefined ? {} : { replicas: options.replicas }
  const runtime = await startSessionRuntime(nc, {
    workers: true,
    topology: replicas,
    ...(options.lateMediaGraceMs === undefined
      ? {}
      : { host: { lateMediaGraceMs: options.lateMediaGraceMs } }),
    reactor: {
      segments: await MediaStore.open(nc, replicas),
      silenceTimeoutMs: options.silenceTimeoutMs ?? 60_000,
    },
  })
  const port = await getFreePort()
  const url = `http://127.0.0.1:${port}`
  const gateway = await startGateway(runtime, { ...gatewayOptions(url), ...options })
  const server = HttpRouter.serve(gatewayRoutes(gateway), {
    disableLogger: true,
    disableListenLog: true,
  }).pipe(
    Layer.provide(
      NodeHttpServer.layer(() => httpServer(options.httpTimeouts ?? DEFAULT_HTTP_TIMEOUTS), {
        port,
        host: "127.0.0.1",
        websocket: gateway.webSocketServerOptions as never,
      }),
    ),
  )
  const fiber = Effect.runFork(Layer.launch(server))
  // Wait until it answers. The port listens before the routes are installed, and a request in
  // that window is never answered: each try gives up after a moment.
  for (let i = 0; ; i++) {
    try {
      const response = await fetch(`${url}/openapi.json`, { signal: AbortSignal.timeout(500) })
      if (response.ok) break
      throw new Error(`openapi.json answered ${response.status}`)
    } catch (error) {
      if (i > 100) throw error
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  return {
    url,
    gateway,
    runtime,
    nc,
    request: async (method, path, { body, token = TEST_API_KEY, raw } = {}) => {
      const headers: Record<string, string> = {}
      if (token !== null) headers["x-access-token"] = token
      if (body !== undefined || raw !== undefined) headers["content-type"] = "application/json"
      const response = await fetch(`${url}${path}`, {
        method,
        headers,
        ...(raw !== undefined ? { body: raw } : body !== undefined ? { body: JSON.stringify(body) } : {}),
      })
      const text = await response.text()
      let parsed: Record<string, unknown>
      try {
        parsed = JSON.parse(text) as Record<string, unknown>
      } catch {
        parsed = { unparsed: text }
      }
      return { status: response.status, body: parsed }
    },
    stop: async () => {
      await Effect.runPromise(Fiber.interrupt(fiber))
      await gateway.stop()
      await runtime.stop()
      await nc.close()
    },
  }
}
