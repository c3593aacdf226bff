/**
 * Request rate limits per API key, per client token and per source address, shared by every
 * gateway: fixed windows counted in a KV bucket (`<prefix>_ratelimits`, keys
 * `<kind>.<who>.<window>`), refused with 429 `rate_limited` and `Retry-After` (the seconds left in
 * the window).
 *
 * A request costs no round trip to NATS: each gateway admits against the count it last read plus
 * what it admitted since, and adds what it admitted to the shared count with compare-and-set every
 * sync interval (reading the others' requests back in the same step). A key it has not seen within
 * an interval is read once before its first request is admitted. The price: all gateways together
 * may admit what they receive within about one sync interval beyond a limit.
 */
import { createHash } from "node:crypto"
import { createRacing, SharedCounters } from "@capture/jetstream"
import { type CaptureError, captureError, failureOf, httpStatusOf } from "@capture/protocol"
import { jetstream } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import type { NatsConnection } from "@nats-io/transport-node"
import { Effect, Option } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { TrustedProxies } from "./ClientAddress.js"

export interface RateLimitSettings {
  /** Length of a counting window, in seconds. */
  readonly rateLimitWindowSeconds: number
  /** Requests one API key may make per window. */
  readonly rateLimitPerApiKey: number
  /** Requests one client token (WebSocket tokens included) may make per window. */
  readonly rateLimitPerClientToken: number
  /** Requests one source address may make per window, whatever it presents. */
  readonly rateLimitPerAddress: number
}

/** One counter a request is charged to. */
interface Charge {
  /** `key.<hash>`, `token.<hash>` or `addr.<address>`. */
  readonly who: string
  readonly limit: number
  /** What the refusal names. */
  readonly field: string
}

/** Counters remembered at once; the oldest is forgotten first (read again when needed). */
const KNOWN_LIMIT = 20_000
/** How long a request waits for a counter's shared count before it is admitted on what is known. */
const READ_WAIT_MS = 250

const digest = (secret: string): string => createHash("sha256").update(secret).digest("hex").slice(0, 32)
/** A KV-safe spelling of an address (`::ffff:127.0.0.1` → `__ffff_127_0_0_1`). */
const addressKey = (address: string): string => address.replace(/[^A-Za-z0-9-]/g, "_").slice(0, 64)

export class RateLimiter {
  private readonly windowMs: number

  private constructor(
    private readonly counters: SharedCounters,
    private readonly settings: RateLimitSettings,
    /** Whose `X-Forwarded-For` names the client a request is counted for. */
    readonly trustedProxies: TrustedProxies,
  ) {
    this.windowMs = settings.rateLimitWindowSeconds * 1000
  }

  static async open(
    nc: NatsConnection,
    options: {
      readonly prefix: string
      readonly replicas: number
      readonly settings: RateLimitSettings
      /** How often admitted requests are added to the shared counts (default 250 ms). */
      readonly syncMs?: number | undefined
      readonly trustedProxies?: TrustedProxies | undefined
      readonly log?: (message: string) => void
    },
  ): Promise<RateLimiter> {
    const windowMs = options.settings.rateLimitWindowSeconds * 1000
    const kv = await createRacing(() =>
      new Kvm(jetstream(nc)).create(`${options.prefix}_ratelimits`, {
        replicas: options.replicas,
        history: 1,
        // A window's counter is dead once the window is over: NATS drops it.
        ttl: 2 * windowMs,
      }),
    )
    const log = options.log ?? (() => {})
    const counters = new SharedCounters(kv, {
      syncMs: options.syncMs ?? 250,
      knownLimit: KNOWN_LIMIT,
      // NATS unreachable: requests are admitted against what is known rather than all refused.
      log: (message) => log(`rate limits: ${message}`),
      // A past window's count is of no use any more; a current one is tried again next time.
      dropOnFailure: (key) => Number(key.slice(key.lastIndexOf(".") + 1)) < Math.floor(Date.now() / windowMs),
    })
    return new RateLimiter(counters, options.settings, options.trustedProxies ?? TrustedProxies.none)
  }

  /**
   * Charges one request from `address` presenting `credential` (if any) to their counters, or
   * says why not: the refusal and the seconds until the window ends.
   */
  async admit(
    address: string | undefined,
    credential: string | undefined,
  ): Promise<{ readonly error: CaptureError; readonly retryAfterSeconds: number } | undefined> {
    const charges: Array<Charge> = []
    if (address !== undefined && address !== "") {
      charges.push({
        who: `addr.${addressKey(address)}`,
        limit: this.settings.rateLimitPerAddress,
        field: "address",
      })
    }
    if (credential?.startsWith("sk-")) {
      charges.push({
        who: `key.${digest(credential)}`,
        limit: this.settings.rateLimitPerApiKey,
        field: "x-access-token",
      })
    } else if (credential?.startsWith("st-")) {
      charges.push({
        who: `token.${digest(credential)}`,
        limit: this.settings.rateLimitPerClientToken,
        field: "x-access-token",
      })
    }
    const now = Date.now()
    const window = Math.floor(now / this.windowMs)
    const keys = charges.map((charge) => `${charge.who}.${window}`)
    await Promise.all(keys.map((key) => this.fresh(key, now)))
    // From here to the increment nothing awaits: two requests of this process never both take the last slot.
    for (const [i, charge] of charges.entries()) {
      if (this.counters.total(keys[i] ?? "") >= charge.limit) {
        const retryAfterSeconds = Math.max(1, Math.ceil(((window + 1) * this.windowMs - Date.now()) / 1000))
        const whose = charge.field === "address" ? "this address" : "this credential"
        return {
          error: captureError(
            "rate_limited",
            `${whose} may make ${charge.limit} requests per ${this.settings.rateLimitWindowSeconds} s; retry in ${retryAfterSeconds} s`,
            { field: charge.field },
          ),
          retryAfterSeconds,
        }
      }
    }
    for (const key of keys) this.counters.count(key, 1)
    return undefined
  }

  /** Reads the shared count of `key` unless it was read or written within the last sync interval. */
  private fresh(key: string, now: number): Promise<void> {
    // A key this process has pending is synced by the timer; a request need not wait for that.
    if (this.counters.isFresh(key, now) || this.counters.isSyncing(key)) return Promise.resolve()
    // NATS slow or away: admit against what is known after a moment rather than hold the request.
    return Promise.race([
      this.counters.refresh(key),
      new Promise<void>((resolve) => setTimeout(resolve, READ_WAIT_MS).unref()),
    ])
  }

  /** Adds what was admitted here to the shared counts, and learns the others' requests. */
  sync(): Promise<void> {
    return this.counters.sync()
  }

  /** Stops syncing, after adding what is pending. */
  stop(): Promise<void> {
    return this.counters.stop()
  }
}

/** The credential a request presents: the `x-access-token` header, or a WebSocket URL's `token`. */
const presentedCredential = (request: HttpServerRequest.HttpServerRequest): string | undefined => {
  const header = request.headers["x-access-token"]
  if (header !== undefined && header !== "") return header
  const query = request.url.indexOf("?")
  if (query < 0) return undefined
  return new URLSearchParams(request.url.slice(query + 1)).get("token") ?? undefined
}

/**
 * Every route: a request over its address's or its credential's limit is 429 `rate_limited` with
 * `Retry-After`, before anything else is done for it (a refused request is not counted).
 */
export const rateLimits = (limiter: RateLimiter) =>
  HttpRouter.middleware(
    (httpEffect) =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const refused = yield* Effect.promise(() =>
          limiter.admit(
            limiter.trustedProxies.clientAddress(
              Option.getOrUndefined(request.remoteAddress),
              request.headers["x-forwarded-for"],
            ),
            presentedCredential(request),
          ),
        )
        if (refused === undefined) return yield* httpEffect
        return HttpServerResponse.jsonUnsafe(failureOf(refused.error), {
          status: httpStatusOf(refused.error.error_code),
          headers: { "retry-after": String(refused.retryAfterSeconds) },
        })
      }),
    { global: true },
  )
