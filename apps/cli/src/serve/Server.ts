/**
 * The all-in-one server: NATS (embedded or external), the session runtime with its workers
 * (projector, timer wheel, session reactor) and the HTTP server, acquired in that order in one scope and released in
 * reverse, so shutdown stops accepting HTTP first, then the workers, then drains NATS, then stops
 * the embedded server. Later parts (HTTP API, webhooks, ingest, muxer) add their routes to
 * `httpRoutes` and their workers to `serve`.
 *
 * Shutdown is bounded: each part gets `shutdownTimeoutMs` to stop (say NATS is gone and a worker
 * waits on it); one still stopping then is left behind, logged, and ends with the process. What it
 * held unacknowledged is redelivered to another instance.
 */
import { resolve } from "node:path"
import {
  AiPipeline,
  AiStore,
  type ChatModel,
  closeEngines,
  TesseractEngine,
  tesseractAvailable,
} from "@capture/ai"
import { findOnPath, resolveFfmpegTools } from "@capture/binaries"
import {
  AccountStore,
  answerClientErrorsWithEnvelope,
  applyHttpTimeouts,
  type Gateway,
  type GatewayOptions,
  gatewayRoutes,
  type HttpTimeouts,
  httpServerOptions,
  startGateway,
  startWebhookDelivery,
  WebhookDispatcher,
} from "@capture/gateway"
import { MediaStore } from "@capture/media"
import { Muxer } from "@capture/muxer"
import { SessionReactor, type SessionRuntime, startSessionRuntime } from "@capture/session-actor"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Context, Data, Effect, Exit, Layer, Option, Result } from "effect"
import { HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import { CommandError, describe, ExitCode, unavailable } from "../Exit.js"
import { log, logEffect, logFormat, showOnce } from "../Log.js"
import { accessLog } from "./AccessLog.js"
import { type AiSettings, chatModelChoiceOf, chatModelOf, enginesOf } from "./AiEnv.js"
import { dataDirLock, LOCK_FILE } from "./DataDirLock.js"
import { embeddedNats } from "./EmbeddedNats.js"
import { healthRoutes } from "./Health.js"
import { createHoldingServer } from "./HoldingServer.js"
import { metricsRoutes } from "./Metrics.js"
import { type ServeNats, serveNats } from "./ServeNats.js"

/**
 * Which parts this process runs: everything (the default), the HTTP gateway (with the session
 * workers and webhook delivery), the muxer or the AI pipeline; or the gateway split in two: `api`
 * (the HTTP API and WebSocket alone) and `workers` (the session workers and webhook delivery).
 */
export type ServeRole = "all" | "gateway" | "api" | "workers" | "muxer" | "ai"

/** Roles that run the session workers (projector, timer wheel, reactor). */
const runsSessionWorkers = (role: ServeRole): boolean => role !== "ai" && role !== "api"
/** Roles that serve the HTTP API and WebSocket. */
const runsApi = (role: ServeRole): boolean => role === "all" || role === "gateway" || role === "api"
/** Roles that deliver webhooks (session and alert). */
const deliversWebhooks = (role: ServeRole): boolean =>
  role === "all" || role === "gateway" || role === "workers"

/** What `capture serve` was asked for. */
export interface ServeOptions {
  readonly role: ServeRole
  readonly port: number
  readonly host: string
  readonly dataDir: string
  readonly startTimeoutMs: number
  readonly stopTimeoutMs: number
  /** How long a created session may wait to be started before it fails `expired`. */
  readonly expireTimeoutMs: number
  /** An active session with no segment for this long is stopped (`recorder_silent`). */
  readonly silenceTimeoutMs: number
  /** After an automatic stop, how long media recorded before it is still taken (`CAPTURE_LATE_MEDIA_GRACE`). */
  readonly lateMediaGraceMs?: number
  /** How the muxer remuxes raw pieces (`CAPTURE_MUXER_REMUX`). */
  readonly muxerRemux?: "native" | "ffmpeg"
  /** How the muxer mixes audio windows (`CAPTURE_MUXER_MIX`). */
  readonly muxerMix?: "native" | "faad" | "ffmpeg"
  /**
   * How long serve keeps trying to start while NATS cannot serve it (unreachable, a node down,
   * no peers to place a stream, a request timing out during an election) before it exits 3.
   */
  readonly startRetryMs: number
  /** How long each part may take to stop on shutdown. */
  readonly shutdownTimeoutMs: number
  readonly replicas: number
  /** External NATS servers (`NATS_URL`); empty: run the embedded server. */
  readonly natsServers: ReadonlyArray<string>
  /** Client port of the embedded server; undefined: 4222, or a free one if that is taken. */
  readonly natsPort: number | undefined
  /** Gateway settings; `publicUrl` undefined: the address serve listens on. */
  readonly gateway: Omit<GatewayOptions, "publicUrl" | "log"> & { readonly publicUrl: string | undefined }
  /** How the HTTP server drops slow clients. */
  readonly httpTimeouts: HttpTimeouts
  /** The AI pipeline's engines and settings. */
  readonly ai: AiSettings
}

/** Everything route modules may need. */
export interface ServerContext {
  readonly nats: ServeNats
  readonly runtime: SessionRuntime
  readonly gateway: Gateway | undefined
}

/** A start step that failed because NATS could not serve it (yet): the start is tried again. */
class StartUnavailable extends Data.TaggedError("StartUnavailable")<{ readonly message: string }> {}

/** Errors of nats.js that say NATS cannot serve a request now, not that the request is wrong. */
const TRANSIENT_NATS_ERRORS = new Set([
  "TimeoutError",
  "NoResponders",
  "RequestError",
  "ConnectionError",
  "JetStreamNotEnabled",
])
/** JetStream API answers of a cluster without quorum, an election or a node down. */
const TRANSIENT_JETSTREAM_ANSWER =
  /no suitable peers|temporarily unavailable|insufficient resources|offline|leader|not current|heartbeats missed/i

/** Whether `error` (or what caused it) is NATS being unavailable for now: worth another start. */
const isNatsUnavailable = (error: unknown): boolean => {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth++) {
    if (TRANSIENT_NATS_ERRORS.has(cause.name)) return true
    if (
      (cause.name === "JetStreamApiError" || cause.name === "JetStreamError") &&
      TRANSIENT_JETSTREAM_ANSWER.test(cause.message)
    )
      return true
  }
  return false
}

/** A part's start failure: retried when NATS was unavailable, else exit 3 at once (say a bad setting). */
const startFailure = (what: string, error: unknown): StartUnavailable | CommandError => {
  const message = `cannot start the ${what}: ${describe(error)}`
  return isNatsUnavailable(error) ? new StartUnavailable({ message }) : unavailable(message)
}

/** Delay before the first new try of a failed start; doubled after each, up to the maximum. */
const START_RETRY_FIRST_MS = 1_000
const START_RETRY_MAX_MS = 15_000

/**
 * Runs `start` again, after a growing delay, while it fails with `StartUnavailable` and
 * `retryMs` has not run out; each failure is logged. Then that failure ends serve with exit 3;
 * any other failure ends it at once.
 */
const retryingStart = <A, E, R>(retryMs: number, start: Effect.Effect<A, E | StartUnavailable, R>) =>
  Effect.gen(function* () {
    const giveUpAt = Date.now() + retryMs
    let delayMs = START_RETRY_FIRST_MS
    for (let attempt = 1; ; attempt++) {
      const exit = yield* Effect.exit(start)
      if (Exit.isSuccess(exit)) return exit.value
      const failure = exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error
      if (!(failure instanceof StartUnavailable)) return yield* Effect.failCause(exit.cause as never)
      const leftMs = giveUpAt - Date.now()
      if (leftMs < delayMs)
        return yield* Effect.fail(unavailable(`${failure.message} (gave up after ${attempt} tries)`))
      log(
        `start failed: ${failure.message}; trying again in ${delayMs / 1_000} s (try ${attempt}, giving up in ${Math.round(leftMs / 1_000)} s)`,
      )
      yield* Effect.sleep(delayMs)
      delayMs = Math.min(delayMs * 2, START_RETRY_MAX_MS)
    }
  })

/** Unknown paths answer in the API's failure envelope. */
const notFound = HttpRouter.add("*", "/*", (request) =>
  Effect.succeed(
    HttpServerResponse.jsonUnsafe(
      { success: false, message: `no route for ${request.method} ${request.url}`, error_code: "not_found" },
      { status: 404 },
    ),
  ),
)

/**
 * The HTTP server: early requests held (see HoldingServer), idle keep-alive sockets kept for 65 s
 * rather than Node's 5 s, longer than the 60 s idle timeout of common load balancers and than
 * clients' own pools, so a client never writes its next upload into a socket being closed. A
 * request's headers, its whole body and any silence while it is read are bounded (`timeouts`);
 * since Node 18 those clocks start with a request's first byte, not while a socket idles between
 * requests, so they may be shorter than the keep-alive.
 */
const keptAliveServer = (timeouts: HttpTimeouts) => () => {
  const server = createHoldingServer(httpServerOptions(timeouts))
  server.keepAliveTimeout = 65_000
  applyHttpTimeouts(server, timeouts)
  answerClientErrorsWithEnvelope(server)
  return server
}

/** Stops one part within `ms`, logging the start and the outcome; never fails. */
/** What describes a display's scenes on this worker, for its start-up line. */
const visualIndexShown = (chat: ChatModel | undefined, tesseract: boolean): string =>
  chat === undefined
    ? tesseract
      ? "local (tesseract)"
      : "off: no tesseract"
    : `chat (${chat.model}${tesseract ? ", tesseract when it fails" : ", no tesseract to fall back on"})`

const stopWithin = (ms: number, part: string, stop: () => Promise<void>) =>
  Effect.gen(function* () {
    yield* logEffect(`stopping ${part}`)
    const outcome = yield* Effect.tryPromise({ try: stop, catch: (error) => error }).pipe(
      Effect.timeoutOption(ms),
      Effect.result,
    )
    if (Result.isFailure(outcome)) yield* logEffect(`${part} failed to stop: ${describe(outcome.failure)}`)
    else if (Option.isNone(outcome.success))
      yield* logEffect(`${part} still stopping after ${ms} ms; going on`)
    else yield* logEffect(`${part} stopped`)
  })

/** Webhook delivery without the API (`--role workers`), stopped with the process. */
const webhookDelivery = (options: ServeOptions, nats: ServeNats, runtime: SessionRuntime) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const topology = runtime.topology.options
        const accounts = await AccountStore.open(nats.nc, { ...topology, log: (message) => log(message) })
        const ai = await AiStore.open(nats.nc, topology).catch((error: unknown) => {
          accounts.close()
          throw error
        })
        const delivery = await startWebhookDelivery(
          runtime,
          { accounts, ai },
          { ...options.gateway, log: (message) => log(message) },
        ).catch((error: unknown) => {
          accounts.close()
          ai.close()
          throw error
        })
        log("webhook delivery started")
        return async () => {
          await delivery.stop()
          ai.close()
          accounts.close()
        }
      },
      catch: (error) => startFailure("webhook delivery", error),
    }),
    (stop) => stopWithin(options.shutdownTimeoutMs, "webhook delivery", stop),
  )

/** Every HTTP route of the server. */
const httpRoutes = (context: ServerContext) =>
  Layer.mergeAll(
    healthRoutes(context.nats, context.runtime.topology.eventStream),
    metricsRoutes(context.nats, context.runtime.readModel, context.gateway),
    ...(context.gateway === undefined ? [] : [gatewayRoutes(context.gateway)]),
    notFound,
  )

/** Runs the server until interrupted (SIGTERM/SIGINT), then shuts it down step by step. */
export const serve = (options: ServeOptions) =>
  Effect.scoped(
    Effect.gen(function* () {
      let servers = options.natsServers
      if (servers.length === 0) {
        // Before anything else: a second embedded nats-server on the same store would corrupt it.
        const lock = yield* dataDirLock(options.dataDir).pipe(
          Effect.mapError((error) =>
            error._tag === "DataDirInUse"
              ? new CommandError({ message: error.message, exitCode: ExitCode.locked })
              : unavailable(error.message),
          ),
        )
        log(`data dir ${resolve(options.dataDir)} locked (${LOCK_FILE})`)
        const embedded = yield* embeddedNats({
          dataDir: options.dataDir,
          port: options.natsPort,
          lockFd: lock.fd,
        }).pipe(Effect.mapError((error) => unavailable(error.message)))
        log(`embedded nats-server pid ${embedded.pid} at ${embedded.url} (store ${embedded.storeDir})`)
        servers = [embedded.url]
      }
      const natsServers = servers
      const nats = yield* retryingStart(
        options.startRetryMs,
        serveNats(natsServers, options.shutdownTimeoutMs).pipe(
          Effect.mapError((error) => new StartUnavailable({ message: error.message })),
        ),
      )
      log(`nats connected: ${servers.join(",")}`)
      // The parts are started together, in their own scope: a failed start stops what it started,
      // and the whole start is tried again while NATS cannot serve it yet.
      return yield* retryingStart(options.startRetryMs, Effect.scoped(startParts(options, nats, natsServers)))
    }),
  )

/** The session runtime, the role's parts and the HTTP server, running until interrupted. */
const startParts = (options: ServeOptions, nats: ServeNats, servers: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const runtime = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () =>
          startSessionRuntime(nats.nc, {
            // The session workers (projector, timer wheel, reactor) run beside the gateway and
            // the muxer; an AI worker only reads views and an `api` process leaves them to
            // `workers`, so those pay for none of them.
            workers: runsSessionWorkers(options.role),
            host: {
              startTimeoutMs: options.startTimeoutMs,
              stopTimeoutMs: options.stopTimeoutMs,
              expireTimeoutMs: options.expireTimeoutMs,
              ...(options.lateMediaGraceMs === undefined
                ? {}
                : { lateMediaGraceMs: options.lateMediaGraceMs }),
            },
            topology: { replicas: options.replicas },
            reactor: {
              segments: await MediaStore.open(nats.nc, { replicas: options.replicas }),
              silenceTimeoutMs: options.silenceTimeoutMs,
            },
            log: (message) => log(message),
          }),
        catch: (error) => startFailure("session runtime", error),
      }),
      (runtime) => stopWithin(options.shutdownTimeoutMs, "workers", () => runtime.stop()),
    )
    log(`session runtime started (stream ${runtime.topology.eventStream}, replicas ${options.replicas})`)
    if (options.role === "api") {
      // The reactor's and the webhook dispatcher's consumers start at new events: they must exist
      // before this process stores any, whenever the `workers` processes start.
      yield* Effect.tryPromise({
        try: async () => {
          const segments = await MediaStore.open(nats.nc, { replicas: options.replicas })
          await SessionReactor.ensureConsumers(runtime.topology, segments.topology)
          const ackWaitMs = options.gateway.webhookAckWaitMs
          await WebhookDispatcher.ensureConsumer(
            nats.nc,
            runtime.topology,
            ackWaitMs === undefined ? {} : { ackWaitMs },
          )
        },
        catch: (error) => startFailure("consumers of the workers", error),
      })
    }

    const listenHost = options.host === "0.0.0.0" || options.host === "::" ? "127.0.0.1" : options.host
    const publicUrl = options.gateway.publicUrl ?? `http://${listenHost}:${options.port}`
    let gateway: Gateway | undefined
    if (runsApi(options.role)) {
      gateway = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () =>
            startGateway(runtime, {
              ...options.gateway,
              deliverWebhooks: deliversWebhooks(options.role),
              publicUrl,
              transcription: options.ai.choice,
              chatModels: chatModelChoiceOf(options.ai),
              log: (message) => log(message),
            }),
          catch: (error) => startFailure("gateway", error),
        }),
        (started) => stopWithin(options.shutdownTimeoutMs, "gateway", () => started.stop()),
      )
      if (gateway.firstApiKey !== undefined) {
        // Shown once (only its hash is stored), and only to a person: JSON lines go to log
        // stores, which must never hold a credential.
        if (logFormat() === "pretty") {
          showOnce(
            `first start: created an API key for the first account (shown once, keep it): ${gateway.firstApiKey}`,
          )
        } else {
          log(
            "first start: created an API key for the first account; JSON logs never show it: run `capture keys create`, or set CAPTURE_API_KEY",
          )
        }
      }
    }
    if (options.role === "workers") yield* webhookDelivery(options, nats, runtime)
    if (options.role === "all" || options.role === "ai") {
      const tools = yield* Effect.try({
        try: () => resolveFfmpegTools(),
        catch: (error) => unavailable(`the AI pipeline needs ffmpeg: ${describe(error)}`),
      })
      const engines = enginesOf(options.ai)
      // The local visual engine: OCR with Tesseract where it is installed (bootstrap.sh installs it),
      // kept loaded in a child process (the CLI per read where its library does not load).
      const textReader = tesseractAvailable() ? new TesseractEngine() : undefined
      const chat = chatModelOf(options.ai)
      // Loaded now (0.5–0.8 CPU s, once) where it describes every scene, not on a display's first read.
      if (chat === undefined) void textReader?.engine()
      const pipeline = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: async () =>
            AiPipeline.start(nats.nc, {
              media: await MediaStore.open(nats.nc, runtime.topology.options),
              store: await AiStore.open(nats.nc, runtime.topology.options),
              readModel: runtime.readModel,
              engines,
              ...(textReader === undefined ? {} : { textReader }),
              ...(chat === undefined ? {} : { chat }),
              // faad decodes the recorder's AAC for a fraction of ffmpeg's start-up cost.
              decoders: { ffmpeg: tools.ffmpeg, faad: findOnPath("faad") },
              prefix: runtime.topology.options.prefix,
              interim: options.ai.interim,
              parallel: options.ai.parallel,
              engineAttempts: options.ai.engineAttempts,
              engineRetryDelayMs: options.ai.engineRetryDelayMs,
              ackWaitMs: options.ai.ackWaitMs,
              log: (message) => log(message),
            }),
          catch: (error) => startFailure("AI pipeline", error),
        }),
        (started) =>
          stopWithin(options.shutdownTimeoutMs, "AI pipeline", async () => {
            await started.stop()
            await closeEngines(engines)
            await textReader?.close()
          }),
      )
      log(
        `AI pipeline started (engines ${options.ai.choice.offered.join(", ") || "none"}, default ${options.ai.choice.default}; visual index ${visualIndexShown(chat, textReader !== undefined)}; alerts ${chat === undefined ? "matched by terms" : `decided by ${chat.model}`})`,
      )
      void pipeline
    }
    if (options.role === "all" || options.role === "muxer") {
      const tools = yield* Effect.try({
        try: () => resolveFfmpegTools(),
        catch: (error) => unavailable(`the muxer needs ffmpeg: ${describe(error)}`),
      })
      const muxer = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: async () =>
            Muxer.start(nats.nc, runtime, {
              mediaStore: await MediaStore.open(nats.nc, {
                ...runtime.topology.options,
                log: (message) => log(message),
              }),
              publicUrl,
              tools,
              replicas: options.replicas,
              remux: options.muxerRemux ?? "native",
              mix: options.muxerMix ?? "native",
              log: (message) => log(message),
            }),
          catch: (error) => startFailure("muxer", error),
        }),
        (started) => stopWithin(options.shutdownTimeoutMs, "muxer", () => started.stop()),
      )
      log(`muxer started (ffmpeg ${tools.ffmpeg})`)
      void muxer
    }

    let listening = false
    // Registered before the server so that it runs after the server has closed.
    yield* Effect.addFinalizer(() => (listening ? logEffect("http server closed") : Effect.void))
    const http = yield* Layer.build(
      HttpRouter.serve(httpRoutes({ nats, runtime, gateway }), {
        disableLogger: true,
        disableListenLog: true,
        middleware: accessLog,
      }).pipe(
        Layer.provideMerge(
          NodeHttpServer.layer(keptAliveServer(options.httpTimeouts), {
            port: options.port,
            host: options.host,
            gracefulShutdownTimeout: "5 seconds",
            ...(gateway === undefined ? {} : { websocket: gateway.webSocketServerOptions as never }),
          }),
        ),
      ),
    ).pipe(
      Effect.mapError((error) =>
        unavailable(`cannot listen on ${options.host}:${options.port}: ${describe(error.cause)}`),
      ),
    )
    listening = true
    const address = HttpServer.formatAddress(Context.get(http, HttpServer.HttpServer).address)
    log(`http listening on ${address}`)
    log(`ready (nats ${servers.join(",")})`)
    // Runs first on shutdown: the finalizers above run after it, in reverse order.
    yield* Effect.addFinalizer(() => logEffect("shutting down: closing http server"))
    return yield* Effect.never
  })
