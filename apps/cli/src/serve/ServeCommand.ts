/**
 * `capture serve`: flags and environment to `ServeOptions`, then the server.
 */
import { Config, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { stopsOnSignal, usage } from "../Exit.js"
import { durationFlag, parseServers } from "../Flags.js"
import { configureLog, LOG_FORMATS, type LogFormat } from "../Log.js"
import { aiSettingsFromEnv } from "./AiEnv.js"
import {
  gatewayOptionsFromEnv,
  httpTimeoutsFromEnv,
  lateMediaGraceFromEnv,
  muxerMixFromEnv,
  muxerRemuxFromEnv,
  rtmpOptionsFromEnv,
  silenceTimeoutFromEnv,
  whipOptionsFromEnv,
} from "./GatewayEnv.js"
import { serve } from "./Server.js"
import { tracingSettingsFromEnv, withTracing } from "./Tracing.js"

/** `CAPTURE_LOG_FORMAT`, when set. */
const logFormatFromEnv = (): LogFormat | undefined => {
  const raw = process.env.CAPTURE_LOG_FORMAT
  if (raw === undefined || raw === "") return undefined
  const format = LOG_FORMATS.find((known) => known === raw)
  if (format === undefined)
    throw usage(`CAPTURE_LOG_FORMAT must be one of ${LOG_FORMATS.join(", ")}, not "${raw}"`)
  return format
}

/** The `serve` command. */
export const serveCommand = Command.make(
  "serve",
  {
    port: Flag.Int("port").pipe(
      Flag.withDescription("HTTP port (default: $PORT, else 8080)"),
      Flag.withFallbackConfig(Config.Port("PORT")),
      Flag.withDefault(8080),
    ),
    host: Flag.String("host").pipe(
      Flag.withDescription("HTTP listen address (default 127.0.0.1)"),
      Flag.withDefault("127.0.0.1"),
    ),
    dataDir: Flag.String("data-dir").pipe(
      Flag.withDescription(
        "Where the embedded NATS server stores its data: <data-dir>/nats (default .capture)",
      ),
      Flag.withDefault(".capture"),
    ),
    natsPort: Flag.Int("nats-port").pipe(
      Flag.withDescription("Client port of the embedded NATS server (default 4222, or a free port if taken)"),
      Flag.optional,
    ),
    startTimeout: durationFlag("start-timeout", "60s", "How long a starting session may wait for media"),
    stopTimeout: durationFlag("stop-timeout", "30s", "How long a stopping session may take to finish"),
    expireTimeout: durationFlag(
      "expire-timeout",
      "24h",
      "How long a created session may wait to be started before it fails (expired)",
    ),
    startRetry: durationFlag(
      "start-retry",
      "5m",
      "How long to keep retrying the start while NATS cannot serve it (unreachable, a node down, no peers for a stream) before exiting 3",
    ),
    shutdownTimeout: durationFlag(
      "shutdown-timeout",
      "10s",
      "On SIGTERM, how long each part (muxer, gateway, workers, NATS drain) may take to stop before serve goes on",
    ),
    publicUrl: Flag.String("public-url").pipe(
      Flag.withDescription(
        "Where URLs handed to clients start, e.g. https://capture.example.com (default: $CAPTURE_PUBLIC_URL, else the listen address)",
      ),
      Flag.withFallbackConfig(Config.String("CAPTURE_PUBLIC_URL")),
      Flag.optional,
    ),
    role: Flag.ChoiceWithValue("role", [
      ["all", "all"],
      ["gateway", "gateway"],
      ["api", "api"],
      ["workers", "workers"],
      ["muxer", "muxer"],
      ["ai", "ai"],
    ] as const).pipe(
      Flag.withDescription(
        "What this process runs: all (default), gateway (HTTP API, WebSocket, webhooks, session workers), api and workers (the gateway in two: the HTTP API and WebSocket alone; the session workers and webhook delivery), muxer or ai (transcription)",
      ),
      Flag.withDefault("all" as const),
    ),
    logFormat: Flag.Literals("log-format", LOG_FORMATS).pipe(
      Flag.withDescription(
        "json (one object per line) or pretty ([capture] …); default: $CAPTURE_LOG_FORMAT, else pretty on a terminal and json otherwise",
      ),
      Flag.optional,
    ),
    replicas: Flag.Int("replicas").pipe(
      Flag.withDescription("JetStream replicas for the stream and buckets: 1, or 3 on a cluster (default 1)"),
      Flag.withDefault(1),
    ),
  },
  (flags) =>
    Effect.suspend(() => {
      configureLog({
        format: Option.getOrUndefined(flags.logFormat) ?? logFormatFromEnv(),
        fields: { role: flags.role },
      })
      stopsOnSignal()
      const serving = serve({
        role: flags.role,
        port: flags.port,
        host: flags.host,
        dataDir: flags.dataDir,
        startTimeoutMs: flags.startTimeout,
        stopTimeoutMs: flags.stopTimeout,
        expireTimeoutMs: flags.expireTimeout,
        silenceTimeoutMs: silenceTimeoutFromEnv(),
        lateMediaGraceMs: lateMediaGraceFromEnv(),
        muxerRemux: muxerRemuxFromEnv(),
        muxerMix: muxerMixFromEnv(),
        startRetryMs: flags.startRetry,
        shutdownTimeoutMs: flags.shutdownTimeout,
        replicas: flags.replicas,
        natsServers: parseServers(process.env.NATS_URL ?? ""),
        natsPort: Option.getOrUndefined(flags.natsPort),
        gateway: {
          ...gatewayOptionsFromEnv(Option.getOrUndefined(flags.publicUrl)),
          rtmp: rtmpOptionsFromEnv(flags.host),
          whip: whipOptionsFromEnv(),
        },
        httpTimeouts: httpTimeoutsFromEnv(),
        ai: aiSettingsFromEnv(),
      })
      return withTracing(tracingSettingsFromEnv(), flags.role, serving)
    }),
).pipe(
  Command.withDescription(
    "Run the all-in-one server: embedded NATS (unless NATS_URL is set), session workers and the HTTP API",
  ),
)
