/**
 * The deployment's key for signed URLs (live playback links). Created once; every gateway reads
 * the same one, so a link one instance hands out works on all of them.
 */
import { randomBytes } from "node:crypto"
import { Schema } from "effect"
import type { AccountBucket } from "./AccountBucket.js"

/** The key as stored (`meta.url_key`), base64. */
const UrlKeyRecord = Schema.Struct({ key: Schema.String })

/** The key, creating it if no gateway has yet. */
export const urlSigningKey = async (bucket: AccountBucket): Promise<Buffer> => {
  // An unreadable key throws: taking it as absent would only lose the race below forever.
  const existing = await bucket.need(UrlKeyRecord, "meta.url_key")
  if (existing !== undefined) return Buffer.from(existing.key, "base64")
  try {
    await bucket.create("meta.url_key", { key: randomBytes(32).toString("base64") })
  } catch {
    // Another gateway created it first.
  }
  return urlSigningKey(bucket)
}
