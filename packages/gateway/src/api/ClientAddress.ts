/**
 * The address a request comes from, for per-address rate limits. Behind a reverse proxy every
 * request arrives from the proxy: with the proxy's addresses trusted (`CAPTURE_TRUSTED_PROXIES`),
 * the client is the nearest address in `X-Forwarded-For` that is not a trusted proxy. Nothing a
 * client writes in that header counts unless a trusted proxy passed it on, so it cannot be
 * spoofed from outside.
 */
import { BlockList, isIP } from "node:net"

/** `::ffff:10.0.0.1` (an IPv4 client of a dual-stack socket) is `10.0.0.1`. */
const plain = (address: string): string => {
  const trimmed = address.trim()
  return trimmed.toLowerCase().startsWith("::ffff:") && isIP(trimmed.slice(7)) === 4
    ? trimmed.slice(7)
    : trimmed
}

const family = (address: string): "ipv4" | "ipv6" | undefined => {
  const version = isIP(address)
  return version === 4 ? "ipv4" : version === 6 ? "ipv6" : undefined
}

export class TrustedProxies {
  private constructor(
    private readonly list: BlockList,
    readonly size: number,
  ) {}

  static readonly none = new TrustedProxies(new BlockList(), 0)

  /**
   * Reads a comma-separated list of addresses and CIDR ranges (`10.0.0.0/8, 127.0.0.1, fd00::/8`);
   * throws naming the first entry that is neither.
   */
  static parse(spec: string): TrustedProxies {
    const list = new BlockList()
    const entries = spec
      .split(",")
      .map((entry) => entry.trim())
      .filter((entry) => entry !== "")
    for (const entry of entries) {
      const [address = "", bits, ...rest] = entry.split("/")
      const type = family(plain(address))
      const prefix = bits === undefined ? undefined : Number(bits)
      const maxBits = type === "ipv4" ? 32 : 128
      if (
        type === undefined ||
        rest.length > 0 ||
        (prefix !== undefined && (!Number.isInteger(prefix) || prefix < 0 || prefix > maxBits))
      ) {
        throw new Error(`trusted proxies: "${entry}" is not an IP address or CIDR range`)
      }
      if (prefix === undefined) list.addAddress(plain(address), type)
      else list.addSubnet(plain(address), prefix, type)
    }
    return new TrustedProxies(list, entries.length)
  }

  isTrusted(address: string): boolean {
    const type = family(address)
    return type !== undefined && this.list.check(address, type)
  }

  /**
   * The client's address: the peer's, or, when the peer is a trusted proxy, the nearest
   * `X-Forwarded-For` hop that is not one (a malformed hop ends the walk at the proxy before it).
   */
  clientAddress(peer: string | undefined, forwardedFor: string | undefined): string | undefined {
    if (peer === undefined) return undefined
    let client = plain(peer)
    if (this.size === 0 || forwardedFor === undefined) return client
    const hops = forwardedFor.split(",").map(plain).reverse()
    for (const hop of hops) {
      if (!this.isTrusted(client)) return client
      if (family(hop) === undefined) return client
      client = hop
    }
    return client
  }
}
