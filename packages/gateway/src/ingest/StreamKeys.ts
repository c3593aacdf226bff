/**
 * Per-session push credentials (RTMP stream keys, WHIP bearer tokens):
 * `<session id>.<base64url HMAC-SHA256 of "<purpose> <session id>">`, keyed by the deployment's
 * key; each purpose its own, so an RTMP key is no WHIP token. Nothing is stored: any gateway checks a key by recomputing it,
 * a key opens only its own session, and stopping the session revokes it (the listener admits a
 * push only while the session records).
 */
import { createHmac, timingSafeEqual } from "node:crypto"

const SESSION_ID = /^cap-[A-Za-z0-9_-]{1,64}$/

export class StreamKeys {
  constructor(
    private readonly key: Buffer,
    /** `rtmp` or `whip`. */
    private readonly purpose: string,
  ) {}

  private mac(sessionId: string): string {
    return createHmac("sha256", this.key).update(`${this.purpose} ${sessionId}`).digest("base64url")
  }

  /** The key a session's start hands out. */
  keyFor(sessionId: string): string {
    return `${sessionId}.${this.mac(sessionId)}`
  }

  /** The session a key opens, or undefined for anything this deployment did not issue. */
  sessionOf(streamKey: string): string | undefined {
    const dot = streamKey.lastIndexOf(".")
    if (dot < 0) return undefined
    const sessionId = streamKey.slice(0, dot)
    if (!SESSION_ID.test(sessionId)) return undefined
    const expected = Buffer.from(this.mac(sessionId))
    const given = Buffer.from(streamKey.slice(dot + 1))
    return given.length === expected.length && timingSafeEqual(given, expected) ? sessionId : undefined
  }
}
