/**
 * Who is publishing to a pushed session: one lease per session in a KV bucket every gateway
 * shares (`<prefix>_publish_leases`), so a second publisher on the same stream key is refused on
 * any gateway. The holder renews its lease while it publishes and through the grace period after
 * a disconnect; the bucket's TTL frees the lease of a gateway that died. A lease also carries
 * where the next publish goes on (the next segment index and the end of the media per kind), so
 * a reconnect to any gateway continues the same channels without a duplicate or a hole.
 */
import { createRacing } from "@capture/jetstream"
import { decodeJson } from "@capture/protocol"
import { jetstream } from "@nats-io/jetstream"
import { type KV, Kvm } from "@nats-io/kv"
import type { NatsConnection } from "@nats-io/transport-node"
import { Result, Schema } from "effect"

const PerKind = Schema.Struct({ video: Schema.Int, audio: Schema.Int })

/**
 * `publishing`: a publisher is connected to `holder`. `grace`: it left; `holder` keeps its last
 * segments until a reconnect takes the lease over (they are then stored as not final) or the grace
 * period ends (stored final, the session stopped). `ended`: the session was stopped that way.
 */
export const Lease = Schema.Struct({
  holder: Schema.String,
  state: Schema.Literals(["publishing", "grace", "ended"]),
  /** The next segment index of each kind (the held-back last segments counted). */
  next: PerKind,
  /** Where each kind's media ends so far (epoch ms): the next publish starts no earlier. */
  end_ms: PerKind,
})
export type Lease = typeof Lease.Type

const decodeLease = decodeJson(Lease)
const encode = (lease: Lease): string => JSON.stringify(lease)

/** A lease this process holds, at the revision it last wrote. */
export interface HeldLease {
  readonly sessionId: string
  readonly lease: Lease
  readonly revision: number
}

export class PublishLeases {
  private constructor(
    private readonly kv: KV,
    private readonly log: (message: string) => void,
  ) {}

  static async open(
    nc: NatsConnection,
    options: {
      readonly prefix: string
      readonly replicas: number
      readonly ttlMs: number
      readonly log: (message: string) => void
    },
  ): Promise<PublishLeases> {
    const kv = await createRacing(() =>
      new Kvm(jetstream(nc)).create(`${options.prefix}_publish_leases`, {
        replicas: options.replicas,
        history: 1,
        ttl: options.ttlMs,
      }),
    )
    return new PublishLeases(kv, options.log)
  }

  /** The session's lease and its revision, if one is live. */
  async read(sessionId: string): Promise<{ readonly lease: Lease; readonly revision: number } | undefined> {
    const entry = await this.kv.get(sessionId)
    if (entry === null || entry.operation !== "PUT") return undefined
    const decoded = decodeLease(entry.value)
    if (Result.isFailure(decoded)) {
      // Read as absent: the next write replaces it (or the TTL removes it).
      this.log(`publish lease ${sessionId}: ${decoded.failure.message}`)
      return undefined
    }
    return { lease: decoded.success, revision: entry.revision }
  }

  /**
   * Takes the session's lease for `holder`: a new one, or one left in `grace`. Undefined (and
   * nothing written) when a publisher holds it or the session was ended by its grace period.
   */
  async acquire(
    sessionId: string,
    holder: string,
    fresh: Pick<Lease, "next" | "end_ms">,
  ): Promise<{ readonly held: HeldLease } | { readonly taken: Lease["state"] }> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.read(sessionId)
      try {
        if (current === undefined) {
          const lease: Lease = { holder, state: "publishing", ...fresh }
          const revision = await this.kv.create(sessionId, encode(lease))
          return { held: { sessionId, lease, revision } }
        }
        if (current.lease.state !== "grace") return { taken: current.lease.state }
        const lease: Lease = {
          holder,
          state: "publishing",
          next: maxOf(current.lease.next, fresh.next),
          end_ms: maxOf(current.lease.end_ms, fresh.end_ms),
        }
        const revision = await this.kv.update(sessionId, encode(lease), current.revision)
        return { held: { sessionId, lease, revision } }
      } catch {
        // Another gateway wrote it between the read and the write: read again.
      }
    }
    return { taken: "publishing" }
  }

  /** Writes `lease` over `held` if nobody took it since; undefined when it was taken (or lost). */
  async renew(held: HeldLease, lease: Lease = held.lease): Promise<HeldLease | undefined> {
    try {
      const revision = await this.kv.update(held.sessionId, encode(lease), held.revision)
      return { sessionId: held.sessionId, lease, revision }
    } catch {
      return undefined
    }
  }

  /** Lets the lease go, if it is still the one held (a taken lease is left to its new holder). */
  async release(held: HeldLease): Promise<void> {
    await this.kv.delete(held.sessionId, { previousSeq: held.revision }).catch(() => undefined)
  }
}

const maxOf = (a: Lease["next"], b: Lease["next"]): Lease["next"] => ({
  video: Math.max(a.video, b.video),
  audio: Math.max(a.audio, b.audio),
})
