/**
 * OpenTelemetry traces of `capture serve`, exported over OTLP/HTTP with effect's own exporter
 * (`effect/observability`'s `OtlpTracer`: no OpenTelemetry SDK), configured by the standard
 * `OTEL_*` variables and off when they name no endpoint. Off, nothing is traced: the packages'
 * spans are one check of an unset tracer, and effect's HTTP spans stay the in-memory ones it
 * always makes.
 *
 * On, every HTTP request is a server span (continuing a `traceparent` the client sent), and the
 * packages' spans (commands, appends, each consumer's handling, webhook POSTs) join the trace of
 * the request that caused them, across NATS (see `@capture/jetstream`'s `Telemetry`).
 */
import { setTracer } from "@capture/jetstream"
import { Effect, Layer } from "effect"
import { FetchHttpClient, UrlParams } from "effect/http"
import { OtlpSerialization, OtlpTracer } from "effect/observability"
import { usage } from "../Exit.js"

/** Where and how spans are exported. */
export interface TracingSettings {
  /** The OTLP/HTTP traces URL (`…/v1/traces`). */
  readonly url: string
  readonly protocol: "http/json" | "http/protobuf"
  readonly headers: Record<string, string>
  /** `OTEL_SERVICE_NAME`, else `service.name` of `OTEL_RESOURCE_ATTRIBUTES`, else `capture`. */
  readonly serviceName: string
  readonly resourceAttributes: Record<string, string>
  /** How often batched spans are sent (`OTEL_BSP_SCHEDULE_DELAY`, default 5 s). */
  readonly exportIntervalMs: number
}

type Env = Readonly<Record<string, string | undefined>>

const set = (env: Env, name: string): string | undefined => {
  const value = env[name]?.trim()
  return value === undefined || value === "" ? undefined : value
}

/** `k1=v1,k2=v2` (values percent-encoded), as the OpenTelemetry variables write lists. */
const keyValues = (env: Env, name: string): Record<string, string> => {
  const raw = set(env, name)
  const pairs: Record<string, string> = {}
  if (raw === undefined) return pairs
  for (const item of raw.split(",")) {
    const at = item.indexOf("=")
    if (at <= 0) throw usage(`${name} must be a list of key=value pairs, not "${raw}"`)
    try {
      pairs[item.slice(0, at).trim()] = decodeURIComponent(item.slice(at + 1).trim())
    } catch {
      throw usage(`${name}: the value of ${item.slice(0, at).trim()} is not percent-encoded`)
    }
  }
  return pairs
}

/**
 * The tracing settings the `OTEL_*` variables ask for, or undefined (tracing off): no endpoint,
 * `OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER` without `otlp` (`none`). A malformed value
 * is a usage error naming it.
 */
export const tracingSettingsFromEnv = (env: Env = process.env): TracingSettings | undefined => {
  if (set(env, "OTEL_SDK_DISABLED")?.toLowerCase() === "true") return undefined
  const exporters = set(env, "OTEL_TRACES_EXPORTER")
  if (exporters !== undefined && !exporters.split(",").some((e) => e.trim().toLowerCase() === "otlp"))
    return undefined
  const signalEndpoint = set(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
  const baseEndpoint = set(env, "OTEL_EXPORTER_OTLP_ENDPOINT")
  const endpoint =
    signalEndpoint ??
    (baseEndpoint === undefined ? undefined : `${baseEndpoint.replace(/\/+$/, "")}/v1/traces`)
  if (endpoint === undefined) return undefined
  const variable =
    signalEndpoint === undefined ? "OTEL_EXPORTER_OTLP_ENDPOINT" : "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
  if (!URL.canParse(endpoint) || !/^https?:$/.test(new URL(endpoint).protocol))
    throw usage(`${variable} must be an http(s) URL, not "${signalEndpoint ?? baseEndpoint}"`)
  const protocol =
    set(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ??
    set(env, "OTEL_EXPORTER_OTLP_PROTOCOL") ??
    "http/protobuf"
  if (protocol !== "http/json" && protocol !== "http/protobuf")
    throw usage(
      `OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf or http/json (grpc is not supported), not "${protocol}"`,
    )
  const delay = set(env, "OTEL_BSP_SCHEDULE_DELAY")
  const exportIntervalMs = delay === undefined ? 5_000 : Number(delay)
  if (!Number.isInteger(exportIntervalMs) || exportIntervalMs < 0)
    throw usage(`OTEL_BSP_SCHEDULE_DELAY must be a number of milliseconds, not "${delay}"`)
  const resourceAttributes = keyValues(env, "OTEL_RESOURCE_ATTRIBUTES")
  const headers = {
    ...keyValues(env, "OTEL_EXPORTER_OTLP_HEADERS"),
    ...keyValues(env, "OTEL_EXPORTER_OTLP_TRACES_HEADERS"),
  }
  return {
    url: endpoint,
    protocol,
    headers,
    serviceName: set(env, "OTEL_SERVICE_NAME") ?? resourceAttributes["service.name"] ?? "capture",
    resourceAttributes,
    exportIntervalMs,
  }
}

// Query parameters that carry a credential or a signature: masked in a span's `url.full`.
const REDACTED_QUERY_PARAMETERS = ["token", "access_token", "sig", "signature", "Signature", "AWSAccessKeyId"]

/**
 * Runs `program` with traces exported as `settings` say (as it is, when undefined): the
 * packages' spans go to the same exporter, which is flushed when `program` ends.
 */
export const withTracing = <A, E, R>(
  settings: TracingSettings | undefined,
  role: string,
  program: Effect.Effect<A, E, R>,
): Effect.Effect<A, E, R> => {
  if (settings === undefined) return program
  const { "service.name": _, ...attributes } = settings.resourceAttributes
  const exporter = OtlpTracer.layer({
    url: settings.url,
    resource: { serviceName: settings.serviceName, attributes: { ...attributes, "capture.role": role } },
    headers: settings.headers,
    exportInterval: settings.exportIntervalMs,
    shutdownTimeout: "3 seconds",
  }).pipe(
    Layer.provide(
      settings.protocol === "http/json" ? OtlpSerialization.layerJson : OtlpSerialization.layerProtobuf,
    ),
    Layer.provide(FetchHttpClient.layer),
  )
  return Effect.gen(function* () {
    setTracer(yield* Effect.tracer)
    return yield* program
  }).pipe(
    Effect.ensuring(Effect.sync(() => setTracer(undefined))),
    Effect.provideService(UrlParams.CurrentRedactedNames, REDACTED_QUERY_PARAMETERS),
    Effect.provide(exporter),
  )
}
