/**
 * Metrics and traces for every package, on effect's `Metric` registry and `Tracer`.
 *
 * Metrics: `counter`, `histogram` and `gauge` make a metric family whose series (one per label
 * set) are made once and updated synchronously, so a hot path pays one map lookup per update.
 * They land in effect's default registry, which `capture serve` scrapes at `/metrics`.
 *
 * Traces: off until `setTracer` installs a tracer (`capture serve` does when `OTEL_*` asks for
 * it); while off, `startSpan` answers `undefined` after one check and nothing else runs. A span's
 * context crosses NATS as a W3C `traceparent` header (`traceparentOf`, `parentOf`), so the
 * projector, the reactor, the muxer and the webhook dispatcher continue the trace of the HTTP
 * request whose command caused the event they handle.
 *
 * ```ts
 * const appends = counter("capture_appends_total", "Events appended")
 * appends.add(1)
 * const span = startSpan("events.append", { parent })
 * try { … } finally { endSpan(span) }
 * ```
 */
import type { JsMsg } from "@nats-io/jetstream"
import { Context, Effect, Exit, Metric, Option, type Tracer } from "effect"
import { Headers, HttpTraceContext } from "effect/http"

const context = Context.empty()

/** Seconds, from 5 ms to 30 s: what a request, a command or an append may take. */
export const LATENCY_BOUNDARIES: ReadonlyArray<number> = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
]

/** Seconds, from 10 ms to 30 min: how far behind a consumer may be. */
export const LAG_BOUNDARIES: ReadonlyArray<number> = [
  0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800,
]

/** Seconds, from 1 s to 1 h: what an export may take. */
export const EXPORT_BOUNDARIES: ReadonlyArray<number> = [1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600]

type Labels = Readonly<Record<string, string>>

interface SeriesNode<M> {
  readonly next: Map<string, SeriesNode<M>>
  metric: M | undefined
}

/**
 * One series per label set, made on first use, found by walking the label values in call order
 * through nested maps: an update allocates nothing once its series exists.
 */
const family = <M>(make: (attributes: Labels) => M) => {
  const root: SeriesNode<M> = { next: new Map(), metric: undefined }
  return (labels: Labels): M => {
    let node = root
    for (const name in labels) {
      const value = labels[name] as string
      let child = node.next.get(value)
      if (child === undefined) {
        child = { next: new Map(), metric: undefined }
        node.next.set(value, child)
      }
      node = child
    }
    node.metric ??= make({ ...labels })
    return node.metric
  }
}

const NO_LABELS: Labels = {}

/** A counter family: `add(n, labels)`. Label values must be few (a type, an outcome), never an id. */
export const counter = (name: string, description: string) => {
  const of = family((attributes) => Metric.counter(name, { description, attributes, incremental: true }))
  return {
    add: (value: number, labels: Labels = NO_LABELS): void => of(labels).updateUnsafe(value, context),
  }
}

/** A histogram family: `observe(value, labels)`. */
export const histogram = (name: string, description: string, boundaries: ReadonlyArray<number>) => {
  const of = family((attributes) => Metric.histogram(name, { description, attributes, boundaries }))
  return {
    observe: (value: number, labels: Labels = NO_LABELS): void => of(labels).updateUnsafe(value, context),
  }
}

/** A gauge family: `set(value, labels)`. */
export const gauge = (name: string, description: string) => {
  const of = family((attributes) => Metric.gauge(name, { description, attributes }))
  return {
    set: (value: number, labels: Labels = NO_LABELS): void => of(labels).updateUnsafe(value, context),
  }
}

/** Seconds since `startedAt` (a `performance.now()`). */
export const secondsSince = (startedAt: number): number => (performance.now() - startedAt) / 1000

// Traces

let tracer: Tracer.Tracer | undefined

/** Installs the tracer spans are exported with; `undefined` turns tracing off (the default). */
export const setTracer = (installed: Tracer.Tracer | undefined): void => {
  tracer = installed
}

/** Whether spans are being made. */
export const tracing = (): boolean => tracer !== undefined

/** What a span continues: an effect span, or one named by a `traceparent`. */
export type SpanParent = Tracer.AnySpan

// Epoch nanoseconds from a monotonic clock, as OTLP wants them.
const originNanos = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint()
const nowNanos = (): bigint => originNanos + process.hrtime.bigint()

/**
 * Starts a span (end it with `endSpan`); `undefined` when tracing is off. Without a parent it
 * starts a trace of its own.
 */
export const startSpan = (
  name: string,
  options: {
    readonly parent?: SpanParent | undefined
    readonly kind?: Tracer.SpanKind
    readonly attributes?: Readonly<Record<string, unknown>>
  } = {},
): Tracer.Span | undefined => {
  if (tracer === undefined) return undefined
  const span = tracer.span({
    name,
    parent: Option.fromUndefinedOr(options.parent),
    annotations: Context.empty(),
    links: [],
    startTime: nowNanos(),
    kind: options.kind ?? "internal",
    root: options.parent === undefined,
    sampled: options.parent?.sampled ?? true,
  })
  if (options.attributes !== undefined) {
    for (const key in options.attributes) span.attribute(key, options.attributes[key])
  }
  return span
}

/** Ends a span, failed when `error` is given. */
export const endSpan = (span: Tracer.Span | undefined, error?: unknown): void => {
  if (span === undefined) return
  span.end(nowNanos(), error === undefined ? Exit.void : Exit.die(error))
}

/** Runs `task` in a span that ends with its outcome; just runs it when tracing is off. */
export const inSpan = async <A>(
  name: string,
  options: Parameters<typeof startSpan>[1],
  task: (span: Tracer.Span | undefined) => Promise<A>,
): Promise<A> => {
  const span = startSpan(name, options)
  if (span === undefined) return task(undefined)
  try {
    const result = await task(span)
    endSpan(span)
    return result
  } catch (error) {
    endSpan(span, error)
    throw error
  }
}

const noParent = Effect.succeed(undefined)

/** The span of the effect running now (an HTTP request's), when tracing is on: what a command it issues continues. */
export const currentSpanParent: Effect.Effect<SpanParent | undefined> = Effect.suspend(() =>
  tracer === undefined ? noParent : Effect.currentParentSpan.pipe(Effect.orElseSucceed(() => undefined)),
)

/** The W3C `traceparent` header naming `span` as the parent of what follows. */
export const traceparentOf = (span: SpanParent): string =>
  `00-${span.traceId.padStart(32, "0")}-${span.spanId}-${span.sampled ? "01" : "00"}`

/** The header name the trace context travels under, in HTTP and in NATS messages. */
export const TRACEPARENT = "traceparent"

/**
 * The span a message's `traceparent` header names, if tracing is on and it names one (a malformed
 * header is ignored: the work starts a trace of its own).
 */
export const parentOf = (message: {
  readonly headers?: { get(name: string): string } | undefined
}): SpanParent | undefined => {
  if (tracer === undefined) return undefined
  return parentFromTraceparent(message.headers?.get(TRACEPARENT))
}

/**
 * The span a `traceparent` value names (one kept with a record, as a durable timer keeps the
 * trace of the command that armed it), if tracing is on and it names one.
 */
export const parentFromTraceparent = (header: string | undefined): SpanParent | undefined => {
  if (tracer === undefined || header === undefined || header === "") return undefined
  return Option.getOrUndefined(HttpTraceContext.w3c(Headers.fromRecordUnsafe({ [TRACEPARENT]: header })))
}

const consumerLag = histogram(
  "capture_consumer_lag_seconds",
  "Time from a message's storing in its stream to a durable consumer taking it up, by consumer",
  LAG_BOUNDARIES,
)

/** A durable consumer takes up `message`: how long after its storing. */
export const observeLag = (consumer: string, message: JsMsg): void => {
  const storedAtMs = Number(message.timestampNanos / 1_000_000n)
  consumerLag.observe(Math.max(0, Date.now() - storedAtMs) / 1000, { consumer })
}

/**
 * A durable consumer takes up `message`: its lag is observed, and a span starts that continues
 * the trace of whatever published it (`undefined` when tracing is off).
 */
export const consumeSpan = (
  consumer: string,
  message: JsMsg,
  attributes?: Readonly<Record<string, unknown>>,
): Tracer.Span | undefined => {
  observeLag(consumer, message)
  if (tracer === undefined) return undefined
  return startSpan(consumer, {
    parent: parentOf(message),
    kind: "consumer",
    attributes: { "messaging.destination.name": message.subject, ...attributes },
  })
}
