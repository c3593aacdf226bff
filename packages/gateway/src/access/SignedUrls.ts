/**
 * Signed URLs for media a browser fetches without headers (live HLS playlists and segments):
 * `?exp=<unix seconds>&sig=<base64url HMAC-SHA256 of "path exp">`, keyed by the deployment's URL
 * key, so no credential ever appears in a URL.
 */
import { createHmac, timingSafeEqual } from "node:crypto"

export class UrlSigner {
  constructor(
    private readonly key: Buffer,
    private readonly lifetimeSeconds = 24 * 60 * 60,
  ) {}

  private mac(path: string, exp: number): string {
    return createHmac("sha256", this.key).update(`${path} ${exp}`).digest("base64url")
  }

  /** The query string (`exp=…&sig=…`) that lets anyone GET `path` until it expires. */
  query(path: string, nowSeconds = Math.floor(Date.now() / 1000)): string {
    const exp = nowSeconds + this.lifetimeSeconds
    return `exp=${exp}&sig=${this.mac(path, exp)}`
  }

  /** Whether `exp` and `sig` sign `path` and have not expired. */
  verify(
    path: string,
    exp: string | null,
    sig: string | null,
    nowSeconds = Math.floor(Date.now() / 1000),
  ): boolean {
    if (exp === null || sig === null || !/^\d{1,12}$/.test(exp) || Number(exp) < nowSeconds) return false
    const expected = Buffer.from(this.mac(path, Number(exp)))
    const given = Buffer.from(sig)
    return given.length === expected.length && timingSafeEqual(given, expected)
  }
}
