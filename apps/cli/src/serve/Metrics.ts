/**
 * `GET /metrics`: this process's metrics in Prometheus text format, with effect's `Metric` module
 * (the default registry) and `PrometheusMetrics.format`. HTTP requests and their latency are
 * counted as they are answered (AccessLog); the rest is sampled at each scrape from what already
 * keeps it: every durable JetStream consumer's pending and unacknowledged messages (the
 * projector's and reactor's lag, the muxer's queue, webhook deliveries waiting or retried, the AI
 * pipeline's lag), the WebSocket hub's connections and its dropped and reaped sockets. Segments
 * and their bytes are counted as their uploads are answered.
 */
import type { Gateway } from "@capture/gateway"
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream"
import { Context, Effect, Layer, Metric } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import type { ServeNats } from "./ServeNats.js"

const context = Context.empty()
const LATENCY_BOUNDARIES = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

const cached = new Map<string, Metric.Metric<number, unknown>>()
/** One metric per name and label set, made once. */
const labelled = <M extends Metric.Metric<number, unknown>>(
  name: string,
  labels: Record<string, string>,
  make: (attributes: Record<string, string>) => M,
): M => {
  const key = `${name}${JSON.stringify(labels)}`
  let metric = cached.get(key)
  if (metric === undefined) {
    metric = make(labels)
    cached.set(key, metric)
  }
  return metric as M
}

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
    labelled("capture_ingest_segments_total", {}, () =>
      Metric.counter("capture_ingest_segments_total", {
        description: "Media segments this gateway stored (or found already stored)",
        incremental: true,
      }),
    ).updateUnsafe(1, context)
    labelled("capture_ingest_bytes_total", {}, () =>
      Metric.counter("capture_ingest_bytes_total", {
        description: "Bytes of the media segments this gateway stored (their declared length)",
        incremental: true,
      }),
    ).updateUnsafe(contentLength, context)
  }
  const labels = { method, route: routeOf(path, status), status: String(status) }
  labelled("capture_http_requests_total", labels, (attributes) =>
    Metric.counter("capture_http_requests_total", {
      description: "HTTP requests answered, by method, route and status",
      attributes,
      incremental: true,
    }),
  ).updateUnsafe(1, context)
  labelled("capture_http_request_duration_seconds", { method, route: labels.route }, (attributes) =>
    Metric.histogram("capture_http_request_duration_seconds", {
      description: "Time from a request's arrival to its answer, by method and route",
      attributes,
      boundaries: LATENCY_BOUNDARIES,
    }),
  ).updateUnsafe(seconds, context)
}

const setGauge = (name: string, description: string, labels: Record<string, string>, value: number): void =>
  labelled(name, labels, (attributes) => Metric.gauge(name, { description, attributes })).updateUnsafe(
    value,
    context,
  )

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
  gateway: Gateway | undefined,
): Layer.Layer<never, never, HttpRouter.HttpRouter> =>
  Layer.unwrap(
    Effect.gen(function* () {
      const jsm = yield* Effect.promise(() => jetstreamManager(nats.nc, { timeout: 2_000 }))
      const scrape = Effect.gen(function* () {
        if (gateway !== undefined) sampleGateway(gateway)
        // A scrape while NATS is away still answers, with the last known lags.
        yield* Effect.promise(() => sampleConsumers(jsm).catch(() => undefined))
        const body = yield* PrometheusMetrics.format()
        return HttpServerResponse.text(body, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
      })
      return HttpRouter.add("GET", "/metrics", scrape)
    }),
  )
