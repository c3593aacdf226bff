/**
 * Purging what outlived its use from the accounts bucket: client token records (WebSocket tokens
 * included) and their id index once the token expired, and a revocation marker once no token its
 * credential issued can still be alive.
 *
 * Each such record is filed, when written, under the hour it expires in (`expiry.<slot start
 * ms>.<what>` naming the keys to purge), so a purge reads only the slots that are due, never the
 * whole bucket. `meta.purged_before` says up to where every slot is done. Any number of gateways
 * run the purge: removing a key twice is harmless, and the mark only moves forward
 * (compare-and-set). A key is removed with everything it ever held (a stream purge of its
 * subject), so no delete marker stays behind either.
 */
import { isRevisionConflict } from "@capture/jetstream"
import { MAX_TOKEN_SECONDS } from "@capture/protocol"
import { Schema } from "effect"
import type { AccountBucket } from "./AccountBucket.js"

/** How wide an expiry slot is: a record is purged within this after it expired. */
export const DEFAULT_EXPIRY_SLOT_MS = 60 * 60 * 1000

const ExpiryEntry = Schema.Struct({
  /** The keys to purge, the entry's own key aside. */
  keys: Schema.Array(Schema.String),
})

const PurgedBefore = Schema.Struct({ before: Schema.Number })
const CURSOR = "meta.purged_before"

/** Slots purged at most per run; a gateway down for a long time catches up over several runs. */
const SLOTS_PER_RUN = 24 * 7

export class ExpiredRecords {
  constructor(
    private readonly bucket: AccountBucket,
    private readonly slotMs: number = DEFAULT_EXPIRY_SLOT_MS,
  ) {}

  private slotOf(atMs: number): number {
    return Math.floor(atMs / this.slotMs) * this.slotMs
  }

  /** Files `keys` for purging once `expiresAt` (ISO or ms) has passed; `name` is unique per record. */
  async file(name: string, expiresAt: string | number, keys: ReadonlyArray<string>): Promise<void> {
    const at = typeof expiresAt === "number" ? expiresAt : Date.parse(expiresAt)
    await this.bucket.put(`expiry.${this.slotOf(at)}.${name}`, { keys })
  }

  /**
   * Purges every slot that ended before `now`. On the first run in a deployment it also sweeps the
   * records written before they were filed (token records and revocation markers).
   */
  async purgeDue(now: number = Date.now()): Promise<{ readonly purged: number }> {
    let purged = 0
    let cursor = await this.bucket.read(PurgedBefore, CURSOR)
    if (cursor._tag === "Absent") {
      purged += await this.sweepUnfiled(now)
      // Slots filed before the first run (since this version wrote them) are purged from the oldest.
      let oldest = this.slotOf(now)
      for (const key of await this.bucket.keys("expiry.>")) {
        const slot = Number(key.split(".")[1])
        if (Number.isFinite(slot) && slot < oldest) oldest = slot
      }
      try {
        await this.bucket.create(CURSOR, { before: oldest })
      } catch {
        // Another gateway started the mark first.
      }
      cursor = await this.bucket.read(PurgedBefore, CURSOR)
    }
    if (cursor._tag !== "Readable") return { purged }
    let { before } = cursor.value
    let revision = cursor.revision
    // A slot is due once it has ended: every record in it expired.
    for (let runs = 0; before + this.slotMs <= now && runs < SLOTS_PER_RUN; runs++) {
      purged += await this.purgeSlot(before)
      before += this.slotMs
      try {
        revision = await this.bucket.kv.update(
          CURSOR,
          new TextEncoder().encode(JSON.stringify({ before })),
          revision,
        )
      } catch (error) {
        if (!isRevisionConflict(error)) throw error
        // Another gateway moved the mark: go on from where it says.
        const moved = await this.bucket.read(PurgedBefore, CURSOR)
        if (moved._tag !== "Readable") return { purged }
        before = Math.max(before, moved.value.before)
        revision = moved.revision
      }
    }
    return { purged }
  }

  private async purgeSlot(slot: number): Promise<number> {
    let purged = 0
    for (const key of await this.bucket.keys(`expiry.${slot}.>`)) {
      const entry = await this.bucket.get(ExpiryEntry, key)
      for (const doomed of entry?.keys ?? []) {
        await this.bucket.purgeSubject(doomed)
        purged++
      }
      await this.bucket.purgeSubject(key)
    }
    return purged
  }

  /** Token records and revocation markers written before expiry slots existed: purged if expired, else filed. */
  private async sweepUnfiled(now: number): Promise<number> {
    const Expiring = Schema.Struct({ token_id: Schema.String, expires_at: Schema.String })
    const Marker = Schema.Struct({ revoked_at: Schema.String, until: Schema.optionalKey(Schema.String) })
    let purged = 0
    for (const key of await this.bucket.keys("token.>")) {
      const token = await this.bucket.get(Expiring, key)
      if (token === undefined) continue
      const keys = [key, `tokenid.${token.token_id}`]
      if (Date.parse(token.expires_at) <= now) {
        for (const doomed of keys) await this.bucket.purgeSubject(doomed)
        purged += keys.length
      } else {
        await this.file(`token-${token.token_id}`, token.expires_at, keys)
      }
    }
    for (const key of await this.bucket.keys("revoked.>")) {
      const marker = await this.bucket.get(Marker, key)
      if (marker === undefined) continue
      const until = marker.until ?? new Date(Date.parse(marker.revoked_at) + MARKER_FALLBACK_MS).toISOString()
      if (Date.parse(until) <= now) {
        await this.bucket.purgeSubject(key)
        purged++
      } else {
        await this.file(`revoked-${key.slice("revoked.".length)}`, until, [key])
      }
    }
    return purged
  }
}

/** A marker written without its `until` outlives the longest client token. */
const MARKER_FALLBACK_MS = MAX_TOKEN_SECONDS * 1000
