/**
 * `GET /metrics`: this process's metrics in Prometheus text format, with effect's `Metric` module
 * (the default registry) and `PrometheusMetrics.format`. The packages count what they do as they
 * do it (`@capture/jetstream`'s `Telemetry`: commands, appends, consumers' lag, exports, webhook
 * attempts); HTTP requests, their latency and ingested segments are counted here as they are
 * answered (AccessLog). The rest is sampled at each scrape from what already keeps it: every
 * durable JetStream consumer's pending and unacknowledged messages (the projector's and
 * reactor's backlog, the muxer's queue, webhook deliveries waiting for a retry, the AI
 * pipeline's backlog), the WebSocket hub's connections and its dropped and reaped sockets, and
 * the sessions in each live status.
 */
import type { Gateway } from "@capture/gateway"
import { counter, gauge, histogram, LATENCY_BOUNDARIES } from "@capture/jetstream"
import type { SessionReadModel } from "@capture/session-actor"
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import type { ServeNats } from "./ServeNats.js"

const ingestSegments = counter(
  "capture_ingest_segments_total",
  "Media segments this gateway stored (or found already stored)",
)
const ingestBytes = counter(
  "capture_ingest_bytes_total",
  "Bytes of the media segments this gateway stored (their declared length)",
)
const httpRequests = counter(
  "capture_http_requests_total",
  "HTTP requests answered, by method, route and status",
)
const httpSeconds = histogram(
  "capture_http_request_duration_seconds",
  "Time from a request's arrival to its answer, by method and route",
  LATENCY_BOUNDARIES,
)

// A label names a route, never one session, channel or file: ids, numbers, channel names and
// file names become placeholders, and a path no route answered is "unmatched" (anyone can make
// up paths; labels must stay few).
const ROUTE_PLACEHOLDERS: ReadonlyArray<readonly [RegExp, string]> = [
  [/\/(?:cap|rts|acct|key|m|a|evt|cmd)-[A-Za-z0-9_-]+/g, "/{id}"],
  [/\/channels\/[^/]+/g, "/channels/{channel}"],
  [/^\/collection\/[^/]+/, "/collection/{cid}"],
  [/^\/live\/\{id\}\/[^/]+\/.*$/, "/live/{id}/{channel}/{file}"],
  [/^\/media\/\{id\}\/.+$/, "/media/{id}/{file}"],
  [/\/\d+(?=\/|$)/g, "/{n}"],
]

/** The route a path was for (`/capture/session/{id}/stop`); `unmatched` for a 404. */
export const routeOf = (path: string, status: number): string =>
  status === 404
    ? "unmatched"
    : ROUTE_PLACEHOLDERS.reduce((route, [pattern, placeholder]) => route.replace(pattern, placeholder), path)

const SEGMENT_UPLOAD = /^\/capture\/session\/[^/]+\/channels\/[^/]+\/segments\/\d+$/

/** Counts one answered HTTP request, its latency, and a stored segment's bytes. */
export const recordHttpRequest = (
  method: string,
  path: string,
  status: number,
  seconds: number,
  contentLength: number,
): void => {
  if (method === "PUT" && status < 300 && SEGMENT_UPLOAD.test(path)) {
    ingestSegments.add(1)
    ingestBytes.add(contentLength)
  }
  const route = routeOf(path, status)
  httpRequests.add(1, { method, route, status: String(status) })
  httpSeconds.observe(seconds, { method, route })
}

const gauges = new Map<string, ReturnType<typeof gauge>>()
const setGauge = (name: string, description: string, labels: Record<string, string>, value: number): void => {
  let family = gauges.get(name)
  if (family === undefined) {
    family = gauge(name, description)
    gauges.set(name, family)
  }
  family.set(value, labels)
}

// Sessions by status are counted from the read model's index, a key listing whose cost grows with
// history: at most once per interval, whatever the scrape rate.
const LIVE_STATUSES = ["created", "starting", "active", "stopping"] as const
const SESSIONS_SAMPLE_INTERVAL_MS = 15_000
let sessionsSampledAt = Number.NEGATIVE_INFINITY

const sampleSessions = async (readModel: SessionReadModel): Promise<void> => {
  if (performance.now() - sessionsSampledAt < SESSIONS_SAMPLE_INTERVAL_MS) return
  sessionsSampledAt = performance.now()
  for (const status of LIVE_STATUSES) {
    setGauge(
      "capture_sessions",
      "Sessions in each live status (created, starting, active, stopping), over every account, sampled every 15 s",
      { status },
      await readModel.countWithStatus(status),
    )
  }
}

/** Every durable consumer of every stream: how far behind it is. */
const sampleConsumers = async (jsm: JetStreamManager): Promise<void> => {
  for await (const stream of jsm.streams.list()) {
    const name = stream.config.name
    for await (const consumer of jsm.consumers.list(name)) {
      if (consumer.config.durable_name === undefined) continue
      const labels = { stream: name, consumer: consumer.config.durable_name }
      setGauge(
        "capture_consumer_pending_messages",
        "Messages of the stream a durable consumer has not been delivered yet (its lag)",
        labels,
        consumer.num_pending,
      )
      setGauge(
        "capture_consumer_ack_pending_messages",
        "Messages delivered to a durable consumer and not acknowledged yet",
        labels,
        consumer.num_ack_pending,
      )
      setGauge(
        "capture_consumer_redelivered_messages",
        "Messages a durable consumer has had delivered more than once and not acknowledged",
        labels,
        consumer.num_redelivered,
      )
    }
  }
}

const sampleGateway = (gateway: Gateway): void => {
  setGauge(
    "capture_websocket_connections",
    "WebSocket connections open on this gateway",
    {},
    gateway.hub.connectionCount,
  )
  setGauge(
    "capture_websocket_dropped_messages",
    "Messages this gateway dropped for sockets over their send buffer, since it started",
    {},
    gateway.webSocketStats.dropped,
  )
  setGauge(
    "capture_websocket_reaped_connections",
    "Sockets this gateway closed for a missed heartbeat, since it started",
    {},
    gateway.webSocketStats.reaped,
  )
}

/** The `/metrics` route. */
export const metricsRoutes = (
  nats: ServeNats,
  readModel: SessionReadModel,
  gateway: Gateway | undefined,
): Layer.Layer<never, never, HttpRouter.HttpRouter> =>
  Layer.unwrap(
    Effect.gen(function* () {
      // No API check (a NATS request that could time out while the routes are built).
      const jsm = yield* Effect.promise(() => jetstreamManager(nats.nc, { timeout: 2_000, checkAPI: false }))
      const scrape = Effect.gen(function* () {
        if (gateway !== undefined) sampleGateway(gateway)
        // A scrape while NATS is away still answers, with the last known lags.
        yield* Effect.promise(() => sampleConsumers(jsm).catch(() => undefined))
        yield* Effect.promise(() => sampleSessions(readModel).catch(() => undefined))
        const body = yield* PrometheusMetrics.format()
        return HttpServerResponse.text(body, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
      })
      return HttpRouter.add("GET", "/metrics", scrape)
    }),
  )
