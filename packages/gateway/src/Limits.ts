/**
 * Every bound the gateway enforces on what clients send, with its default. `capture serve` reads
 * each from its environment variable (docs/operations.md lists them); a refusal names a stable
 * `error_code` and the field, never a 5xx.
 */

export interface GatewayLimits {
  /** Largest JSON body, in bytes (413 `payload_too_large`). */
  readonly maxJsonBytes: number
  /** Deepest nesting of arrays and objects in a JSON body, the root counting as one (400 `invalid_json`). */
  readonly maxJsonDepth: number
  /** Largest `metadata`, serialized, in bytes (400 `invalid_field`). */
  readonly maxMetadataBytes: number
  /** Most channels a session may start (400 `invalid_field`). */
  readonly maxChannels: number
  /** Longest `channel_name` / `name` of a channel, in characters (400 `invalid_field`). */
  readonly maxChannelNameLength: number
  /** Largest media segment, in bytes (413 `payload_too_large`). */
  readonly maxSegmentBytes: number
  /** Highest segment index (400 `invalid_field`). */
  readonly maxSegmentIndex: number
  /** Media bytes one session may store (402 `quota_exceeded`). */
  readonly sessionQuotaBytes: number
  /** Media bytes one account may store over all its sessions (402 `quota_exceeded`). */
  readonly accountQuotaBytes: number
  /** Segment uploads one credential may have in flight on one gateway (429 `rate_limited`). */
  readonly maxUploadsPerCredential: number
  /** Lifetime of the token a `websocket_url` carries, in seconds. */
  readonly webSocketTokenSeconds: number
  /** Length of a rate limit window, in seconds (the limits below count requests per window). */
  readonly rateLimitWindowSeconds: number
  /** Requests one API key may make per window, over all gateways (429 `rate_limited`). */
  readonly rateLimitPerApiKey: number
  /** Requests one client token may make per window, over all gateways (429 `rate_limited`). */
  readonly rateLimitPerClientToken: number
  /** Requests one source address may make per window, over all gateways (429 `rate_limited`). */
  readonly rateLimitPerAddress: number
  /**
   * How long before a late-media window's end (`late_media_until`, when the export is asked for)
   * ingest stops taking late media, so every upload it took has finished before the export reads
   * the segments: the HTTP request timeout (at most half the window).
   */
  readonly lateMediaMarginMs: number
}

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB

export const DEFAULT_LIMITS: GatewayLimits = {
  maxJsonBytes: MiB,
  maxJsonDepth: 32,
  maxMetadataBytes: 16 * KiB,
  maxChannels: 16,
  maxChannelNameLength: 128,
  maxSegmentBytes: 32 * MiB,
  // A day and more of the recorder's 2-second segments (55 hours at one-second segments).
  maxSegmentIndex: 200_000,
  sessionQuotaBytes: 16 * GiB,
  accountQuotaBytes: 1024 * GiB,
  maxUploadsPerCredential: 16,
  webSocketTokenSeconds: 10 * 60,
  rateLimitWindowSeconds: 10,
  // 1,000 requests a second per key; a recorder's token makes a few a second per channel.
  rateLimitPerApiKey: 10_000,
  rateLimitPerClientToken: 1_000,
  rateLimitPerAddress: 20_000,
  lateMediaMarginMs: 120_000,
}

/** `DEFAULT_LIMITS` with what `given` sets. */
export const limitsOf = (given: Partial<GatewayLimits>): GatewayLimits => {
  const limits: Record<string, number> = { ...DEFAULT_LIMITS }
  for (const key of Object.keys(DEFAULT_LIMITS) as Array<keyof GatewayLimits>) {
    const value = given[key]
    if (value !== undefined) limits[key] = value
  }
  return limits as unknown as GatewayLimits
}

/** Largest message a WebSocket client may send (`ws`'s `maxPayload`; it buffers a message whole). */
export const DEFAULT_WS_MAX_MESSAGE_BYTES = 64 * KiB

/** How the HTTP server drops slow clients (Node's `http.Server` settings). */
export interface HttpTimeouts {
  /** Complete request headers must arrive within this (`server.headersTimeout`). */
  readonly headersTimeoutMs: number
  /** The whole request, body included, must arrive within this (`server.requestTimeout`). */
  readonly requestTimeoutMs: number
  /** A request whose socket receives nothing for this long is dropped (`server.timeout`). */
  readonly idleTimeoutMs: number
}

export const DEFAULT_HTTP_TIMEOUTS: HttpTimeouts = {
  headersTimeoutMs: 20_000,
  // A 32 MiB segment over a 2.5 Mbit/s uplink; a stalled body is dropped by the idle timeout first.
  requestTimeoutMs: 120_000,
  idleTimeoutMs: 30_000,
}

/** The options of `http.createServer` that enforce `timeouts`, checked every second rather than Node's 30 s. */
export const httpServerOptions = (timeouts: HttpTimeouts) => ({
  headersTimeout: timeouts.headersTimeoutMs,
  requestTimeout: timeouts.requestTimeoutMs,
  connectionsCheckingInterval: Math.min(1_000, timeouts.headersTimeoutMs),
})

/** Applies `timeouts` to a server made without `httpServerOptions` (all but the checking interval). */
export const applyHttpTimeouts = (
  server: { headersTimeout: number; requestTimeout: number; timeout: number },
  timeouts: HttpTimeouts,
): void => {
  server.headersTimeout = timeouts.headersTimeoutMs
  server.requestTimeout = timeouts.requestTimeoutMs
  // Socket inactivity while a request is read or answered; `ws` clears it on upgraded sockets.
  server.timeout = timeouts.idleTimeoutMs
}

// A control character costs six bytes in JSON (`\u0001`): the worst case of any text field.
const ESCAPED = 6
/** end_user_id, client_id (256), callback_url (2048), ws_connection_id (128): the protocol's bounds. */
const SESSION_TEXT_CHARS = 256 + 256 + 2048 + 128
/** The longest channel id the protocol accepts: `system_audio:` and 64 characters. */
const CHANNEL_ID_CHARS = 77
/** Ids, times, statuses, keys and URLs the server writes itself. */
const FIXED_BYTES = 16 * KiB

/**
 * The largest message a session can become within `limits`: an event, its read-model view or its
 * snapshot. Metadata appears once in each; a channel in the view appears as a channel, an
 * rtstream, an export and a raw asset.
 */
export const largestSessionMessageBytes = (limits: GatewayLimits): number => {
  const perChannel = 4 * ((limits.maxChannelNameLength + CHANNEL_ID_CHARS) * ESCAPED + 512)
  const connectionIds = (limits.maxChannels + 2) * 128 * ESCAPED
  return (
    FIXED_BYTES +
    2 * SESSION_TEXT_CHARS * ESCAPED +
    limits.maxMetadataBytes +
    limits.maxChannels * perChannel +
    connectionIds
  )
}

/**
 * Throws when a session within `limits` could outgrow a NATS message (`max_payload`): its events
 * could not be stored, or its view could not be projected.
 */
export const assertLimitsFit = (limits: GatewayLimits, maxPayload: number): void => {
  const largest = largestSessionMessageBytes(limits)
  if (largest > maxPayload) {
    throw new Error(
      `the request limits allow a session of ${largest} bytes, more than the NATS server's max_payload ` +
        `(${maxPayload}): lower the metadata size, channel count or channel name length, or raise max_payload`,
    )
  }
}
