/**
 * The gateway's settings from the environment. A malformed value stops `serve` with a usage
 * error naming the variable, instead of running with a guess.
 */

import { isIP } from "node:net"
import {
  DEFAULT_HTTP_TIMEOUTS,
  DEFAULT_LIMITS,
  DEFAULT_WS_MAX_MESSAGE_BYTES,
  type HttpTimeouts,
  parseRetention,
  parseRetrySchedule,
  RETENTION_ENV,
  RTMP_APP,
  type RtmpOptions,
  SCHEDULE_ENV,
  type WhipOptions,
} from "@capture/gateway"
import type { WebhookSecret } from "@capture/protocol"
import { Result } from "effect"
import { usage } from "../Exit.js"
import { parseDuration } from "../Flags.js"
import type { ServeOptions } from "./Server.js"

const intFromEnv = (name: string, fallback: number): number => {
  const raw = process.env[name]
  if (raw === undefined || raw === "") return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value <= 0) throw usage(`${name} must be a positive integer, got "${raw}"`)
  return value
}

/** `CAPTURE_SILENCE_TIMEOUT_MS`: an active session with no segment for this long is stopped. */
export const silenceTimeoutFromEnv = (): number => intFromEnv("CAPTURE_SILENCE_TIMEOUT_MS", 60_000)

/** The late-media grace period when `CAPTURE_LATE_MEDIA_GRACE` is unset. */
export const DEFAULT_LATE_MEDIA_GRACE_MS = 5 * 60_000

/**
 * `CAPTURE_LATE_MEDIA_GRACE` (`5m`, `90s`, … or `0` for none): after an automatic stop, how long
 * segments recorded before it are still taken before the automatic export starts.
 */
export const lateMediaGraceFromEnv = (): number => {
  const raw = process.env.CAPTURE_LATE_MEDIA_GRACE
  if (raw === undefined || raw === "") return DEFAULT_LATE_MEDIA_GRACE_MS
  if (/^\s*0+\s*(ms|s|m|h)?\s*$/.test(raw)) return 0
  try {
    return parseDuration(raw)
  } catch (error) {
    throw usage(`CAPTURE_LATE_MEDIA_GRACE: ${error instanceof Error ? error.message : String(error)}`)
  }
}

/**
 * `CAPTURE_MUXER_REMUX`: `native` (default) remuxes raw pieces in process; `ffmpeg` runs one
 * ffmpeg per segment, as before (benchmarks compare the two).
 */
export const muxerRemuxFromEnv = (): "native" | "ffmpeg" => {
  const raw = process.env.CAPTURE_MUXER_REMUX
  if (raw === undefined || raw === "" || raw === "native") return "native"
  if (raw === "ffmpeg") return "ffmpeg"
  throw usage(`CAPTURE_MUXER_REMUX must be native or ffmpeg, got "${raw}"`)
}

/**
 * `CAPTURE_MUXER_MIX`: `native` (default) mixes audio windows in process (long-lived ffmpeg
 * decoders and encoder, no process per window); `faad` the same with one faad per channel run;
 * `ffmpeg` runs one ffmpeg per window (benchmarks compare the three).
 */
export const muxerMixFromEnv = (): "native" | "faad" | "ffmpeg" => {
  const raw = process.env.CAPTURE_MUXER_MIX
  if (raw === undefined || raw === "" || raw === "native") return "native"
  if (raw === "ffmpeg" || raw === "faad") return raw
  throw usage(`CAPTURE_MUXER_MIX must be native, faad or ffmpeg, got "${raw}"`)
}

/**
 * The RTMP listener for pushed sessions: `CAPTURE_RTMP_PORT` turns it on (off when unset), on
 * `CAPTURE_RTMP_HOST` (default: serve's `--host`); `CAPTURE_RTMP_PUBLIC_URL` is what publishers
 * are told (default `rtmp://<host>:<port>/live`), `CAPTURE_RTMP_GRACE_MS` how long a session
 * waits for its publisher to come back (default 10 s).
 */
export const rtmpOptionsFromEnv = (host: string): RtmpOptions | undefined => {
  const raw = process.env.CAPTURE_RTMP_PORT
  if (raw === undefined || raw === "") return undefined
  const port = intFromEnv("CAPTURE_RTMP_PORT", 0)
  if (port > 65_535) throw usage(`CAPTURE_RTMP_PORT must be a port number, got "${raw}"`)
  const publicUrl = process.env.CAPTURE_RTMP_PUBLIC_URL
  if (publicUrl !== undefined && publicUrl !== "" && !/^rtmps?:\/\/[^/]+\/[^/]+\/?$/.test(publicUrl)) {
    throw usage(`CAPTURE_RTMP_PUBLIC_URL must look like rtmp://host:port/live, got "${publicUrl}"`)
  }
  const listenHost = process.env.CAPTURE_RTMP_HOST || host
  const advertisedHost = listenHost === "0.0.0.0" || listenHost === "::" ? "127.0.0.1" : listenHost
  return {
    host: listenHost,
    port,
    publicUrl: publicUrl || `rtmp://${advertisedHost}:${port}/${RTMP_APP}`,
    graceMs: intFromEnv("CAPTURE_RTMP_GRACE_MS", 10_000),
  }
}

/**
 * WHIP publishes for pushed sessions: `CAPTURE_WHIP_ICE_ADDRESSES` (local addresses, comma-separated,
 * whose host candidates publishers are offered: `127.0.0.1` on one machine, the server's own
 * address on a network) turns it on; `CAPTURE_WHIP_ICE_PORTS` (`min-max`) bounds the UDP ports;
 * `CAPTURE_WHIP_GRACE_MS` is how long a session waits for its publisher to come back (default 10 s).
 */
export const whipOptionsFromEnv = (): WhipOptions | undefined => {
  const raw = process.env.CAPTURE_WHIP_ICE_ADDRESSES
  if (raw === undefined || raw.trim() === "") return undefined
  const iceAddresses = raw
    .split(",")
    .map((address) => address.trim())
    .filter((address) => address !== "")
  const notAnAddress = iceAddresses.find((address) => isIP(address) === 0)
  if (notAnAddress !== undefined) {
    throw usage(`CAPTURE_WHIP_ICE_ADDRESSES must list IP addresses, got "${notAnAddress}"`)
  }
  const ports = process.env.CAPTURE_WHIP_ICE_PORTS
  let icePortRange: readonly [number, number] | undefined
  if (ports !== undefined && ports !== "") {
    const match = /^(\d{1,5})-(\d{1,5})$/.exec(ports.trim())
    const [min, max] = [Number(match?.[1]), Number(match?.[2])]
    if (match === null || min < 1 || max > 65_535 || min >= max) {
      throw usage(`CAPTURE_WHIP_ICE_PORTS must be a port range like 40000-40100, got "${ports}"`)
    }
    icePortRange = [min, max]
  }
  return { iceAddresses, icePortRange, graceMs: intFromEnv("CAPTURE_WHIP_GRACE_MS", 10_000) }
}

export const gatewayOptionsFromEnv = (publicUrl: string | undefined): ServeOptions["gateway"] => {
  const scheduleText = process.env[SCHEDULE_ENV]
  let webhookScheduleMs: ReadonlyArray<number> | undefined
  if (scheduleText !== undefined && scheduleText !== "") {
    const parsed = parseRetrySchedule(scheduleText)
    if (Result.isFailure(parsed)) throw usage(`${SCHEDULE_ENV}: ${parsed.failure.message}`)
    webhookScheduleMs = parsed.success
  }
  const retentionText = process.env[RETENTION_ENV]
  let webhookRetentionMs: number | undefined
  if (retentionText !== undefined && retentionText !== "") {
    const parsed = parseRetention(retentionText, webhookScheduleMs)
    if (Result.isFailure(parsed)) throw usage(parsed.failure.message)
    webhookRetentionMs = parsed.success
  }
  const secret = process.env.CAPTURE_WEBHOOK_SECRET
  if (secret !== undefined && secret !== "" && !secret.startsWith("whsec_")) {
    throw usage("CAPTURE_WEBHOOK_SECRET must look like whsec_<base64>")
  }
  return {
    publicUrl,
    maxJsonBytes: intFromEnv("CAPTURE_MAX_JSON_BYTES", DEFAULT_LIMITS.maxJsonBytes),
    maxJsonDepth: intFromEnv("CAPTURE_MAX_JSON_DEPTH", DEFAULT_LIMITS.maxJsonDepth),
    maxMetadataBytes: intFromEnv("CAPTURE_MAX_METADATA_BYTES", DEFAULT_LIMITS.maxMetadataBytes),
    maxChannels: intFromEnv("CAPTURE_MAX_CHANNELS", DEFAULT_LIMITS.maxChannels),
    maxChannelNameLength: intFromEnv("CAPTURE_MAX_CHANNEL_NAME_LENGTH", DEFAULT_LIMITS.maxChannelNameLength),
    maxSegmentBytes: intFromEnv("CAPTURE_MAX_SEGMENT_BYTES", DEFAULT_LIMITS.maxSegmentBytes),
    maxSegmentIndex: intFromEnv("CAPTURE_MAX_SEGMENT_INDEX", DEFAULT_LIMITS.maxSegmentIndex),
    sessionQuotaBytes: intFromEnv("CAPTURE_SESSION_QUOTA_BYTES", DEFAULT_LIMITS.sessionQuotaBytes),
    accountQuotaBytes: intFromEnv("CAPTURE_ACCOUNT_QUOTA_BYTES", DEFAULT_LIMITS.accountQuotaBytes),
    maxUploadsPerCredential: intFromEnv(
      "CAPTURE_MAX_UPLOADS_PER_CREDENTIAL",
      DEFAULT_LIMITS.maxUploadsPerCredential,
    ),
    webSocketTokenSeconds: intFromEnv("CAPTURE_WS_TOKEN_SECONDS", DEFAULT_LIMITS.webSocketTokenSeconds),
    rateLimitWindowSeconds: intFromEnv(
      "CAPTURE_RATE_LIMIT_WINDOW_SECONDS",
      DEFAULT_LIMITS.rateLimitWindowSeconds,
    ),
    rateLimitPerApiKey: intFromEnv("CAPTURE_RATE_LIMIT_PER_API_KEY", DEFAULT_LIMITS.rateLimitPerApiKey),
    rateLimitPerClientToken: intFromEnv(
      "CAPTURE_RATE_LIMIT_PER_CLIENT_TOKEN",
      DEFAULT_LIMITS.rateLimitPerClientToken,
    ),
    rateLimitPerAddress: intFromEnv("CAPTURE_RATE_LIMIT_PER_ADDRESS", DEFAULT_LIMITS.rateLimitPerAddress),
    // An upload taken before the margin has ended (or been cut by the HTTP server) by the export.
    lateMediaMarginMs: httpTimeoutsFromEnv().requestTimeoutMs,
    trustedProxies: process.env.CAPTURE_TRUSTED_PROXIES ?? "",
    defaultTokenSeconds: 24 * 60 * 60,
    webhookAllowHosts: process.env.CAPTURE_WEBHOOK_ALLOW_HOSTS ?? "",
    webhookScheduleMs,
    webhookRetentionMs,
    webhookAckWaitMs: intFromEnv("CAPTURE_WEBHOOK_ACK_WAIT_MS", 30_000),
    // The search index's SQLite file (one per process); unset: in memory, rebuilt at start.
    searchDbPath: process.env.CAPTURE_SEARCH_DB || undefined,
    webSocket: {
      maxBufferedBytes: intFromEnv("CAPTURE_WS_MAX_BUFFERED_BYTES", 1024 * 1024),
      pingIntervalMs: intFromEnv("CAPTURE_WS_PING_INTERVAL_MS", 30_000),
      maxMessageBytes: intFromEnv("CAPTURE_WS_MAX_MESSAGE_BYTES", DEFAULT_WS_MAX_MESSAGE_BYTES),
    },
    seedApiKey: process.env.CAPTURE_API_KEY,
    seedWebhookSecret: secret === undefined || secret === "" ? undefined : (secret as WebhookSecret),
  }
}

/** The HTTP server's slow-client timeouts from the environment. */
export const httpTimeoutsFromEnv = (): HttpTimeouts => {
  const timeouts: HttpTimeouts = {
    headersTimeoutMs: intFromEnv("CAPTURE_HTTP_HEADERS_TIMEOUT_MS", DEFAULT_HTTP_TIMEOUTS.headersTimeoutMs),
    requestTimeoutMs: intFromEnv("CAPTURE_HTTP_REQUEST_TIMEOUT_MS", DEFAULT_HTTP_TIMEOUTS.requestTimeoutMs),
    idleTimeoutMs: intFromEnv("CAPTURE_HTTP_IDLE_TIMEOUT_MS", DEFAULT_HTTP_TIMEOUTS.idleTimeoutMs),
  }
  // Node refuses a server whose headers may take longer than the whole request.
  if (timeouts.headersTimeoutMs > timeouts.requestTimeoutMs) {
    throw usage("CAPTURE_HTTP_HEADERS_TIMEOUT_MS may not exceed CAPTURE_HTTP_REQUEST_TIMEOUT_MS")
  }
  return timeouts
}
