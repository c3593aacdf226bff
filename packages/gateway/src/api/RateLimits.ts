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
import { createRacing, isRevisionConflict } from "@capture/jetstream"
import { type CaptureError, captureError, failureOf, httpStatusOf } from "@capture/protocol"
import { jetstream } from "@nats-io/jetstream"
import { type KV, Kvm } from "@nats-io/kv"
import type { NatsConnection } from "@nats-io/transport-node"
import { Effect, Option } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"

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

interface Known {
  /** The shared count as last read or written. */
  readonly total: number
  /** When it was read or written (ms). */
  readonly at: number
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()
/** Counters remembered at once; the oldest is forgotten first (read again when needed). */
const KNOWN_LIMIT = 20_000
/** How long a request waits for a counter's shared count before it is admitted on what is known. */
const READ_WAIT_MS = 250
/** Counters added to the bucket at once by a sync. */
const SYNC_PARALLELISM = 32

const digest = (secret: string): string => createHash("sha256").update(secret).digest("hex").slice(0, 32)
/** A KV-safe spelling of an address (`::ffff:127.0.0.1` → `__ffff_127_0_0_1`). */
const addressKey = (address: string): string => address.replace(/[^A-Za-z0-9-]/g, "_").slice(0, 64)

export class RateLimiter {
  private readonly known = new Map<string, Known>()
  /** Requests admitted here and not yet added to the bucket, by counter key. */
  private readonly pending = new Map<string, number>()
  private readonly reading = new Map<string, Promise<void>>()
  private readonly timer: NodeJS.Timeout
  private syncing: Promise<void> = Promise.resolve()
  private readonly windowMs: number

  private constructor(
    private readonly kv: KV,
    private readonly settings: RateLimitSettings,
    private readonly syncMs: number,
    private readonly log: (message: string) => void,
  ) {
    this.windowMs = settings.rateLimitWindowSeconds * 1000
    this.timer = setInterval(() => void this.sync(), syncMs)
    this.timer.unref()
  }

  static async open(
    nc: NatsConnection,
    options: {
      readonly prefix: string
      readonly replicas: number
      readonly settings: RateLimitSettings
      /** How often admitted requests are added to the shared counts (default 250 ms). */
      readonly syncMs?: number | undefined
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
    return new RateLimiter(kv, options.settings, options.syncMs ?? 250, options.log ?? (() => {}))
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
      const key = keys[i] ?? ""
      const used = (this.known.get(key)?.total ?? 0) + (this.pending.get(key) ?? 0)
      if (used >= charge.limit) {
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
    for (const key of keys) this.pending.set(key, (this.pending.get(key) ?? 0) + 1)
    return undefined
  }

  /** Reads the shared count of `key` unless it was read or written within the last sync interval. */
  private fresh(key: string, now: number): Promise<void> {
    const known = this.known.get(key)
    if (known !== undefined && now - known.at < this.syncMs) return Promise.resolve()
    // A key this process has pending is synced by the timer; a request need not wait for that.
    if (known !== undefined && this.pending.has(key)) return Promise.resolve()
    const inFlight = this.reading.get(key)
    if (inFlight !== undefined) return inFlight
    const read = this.kv
      .get(key)
      .then((entry) => {
        this.remember(key, entry === null || entry.operation !== "PUT" ? 0 : this.countOf(entry.value))
      })
      .catch((error: unknown) => {
        // NATS unreachable: admit against what is known rather than refuse every request.
        this.log(`rate limits: cannot read ${key}: ${error instanceof Error ? error.message : String(error)}`)
      })
      .finally(() => this.reading.delete(key))
    this.reading.set(key, read)
    // NATS slow or away: admit against what is known after a moment rather than hold the request.
    return Promise.race([read, new Promise<void>((resolve) => setTimeout(resolve, READ_WAIT_MS).unref())])
  }

  /** Adds what was admitted here to the shared counts, and learns the others' requests. */
  sync(): Promise<void> {
    this.syncing = this.syncing.then(async () => {
      const batch = [...this.pending]
      for (let i = 0; i < batch.length; i += SYNC_PARALLELISM) {
        await Promise.all(
          batch.slice(i, i + SYNC_PARALLELISM).map(([key, count]) => this.syncKey(key, count)),
        )
      }
    })
    return this.syncing
  }

  private async syncKey(key: string, count: number): Promise<void> {
    try {
      const total = await this.add(key, count)
      const left = (this.pending.get(key) ?? 0) - count
      if (left === 0) this.pending.delete(key)
      else this.pending.set(key, left)
      this.remember(key, total)
    } catch (error) {
      this.log(`rate limits: cannot count ${key}: ${error instanceof Error ? error.message : String(error)}`)
      // A past window's count is of no use any more; a current one is tried again next time.
      if (Number(key.slice(key.lastIndexOf(".") + 1)) < Math.floor(Date.now() / this.windowMs)) {
        this.pending.delete(key)
      }
    }
  }

  /** Stops syncing, after adding what is pending. */
  async stop(): Promise<void> {
    clearInterval(this.timer)
    await this.sync()
  }

  private countOf(value: Uint8Array): number {
    const count = Number(decoder.decode(value))
    return Number.isFinite(count) ? count : 0
  }

  private remember(key: string, total: number): void {
    this.known.delete(key)
    this.known.set(key, { total, at: Date.now() })
    if (this.known.size > KNOWN_LIMIT) {
      const oldest = this.known.keys().next().value
      if (oldest !== undefined) this.known.delete(oldest)
    }
  }

  /** Adds `count` to a key with compare-and-set; returns the new total. */
  private async add(key: string, count: number): Promise<number> {
    for (;;) {
      const entry = await this.kv.get(key)
      const current = entry === null || entry.operation !== "PUT" ? 0 : this.countOf(entry.value)
      const total = current + count
      try {
        if (entry === null) await this.kv.create(key, encoder.encode(String(total)))
        else await this.kv.update(key, encoder.encode(String(total)), entry.revision)
        return total
      } catch (error) {
        // Another gateway added first: read again.
        if (!isRevisionConflict(error)) throw error
      }
    }
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
          limiter.admit(Option.getOrUndefined(request.remoteAddress), presentedCredential(request)),
        )
        if (refused === undefined) return yield* httpEffect
        return HttpServerResponse.jsonUnsafe(failureOf(refused.error), {
          status: httpStatusOf(refused.error.error_code),
          headers: { "retry-after": String(refused.retryAfterSeconds) },
        })
      }),
    { global: true },
  )
