/**
 * Which `callback_url`s webhooks may be sent to. Only http(s), and by default never a host that
 * resolves to an address inside the deployment's reach (loopback, private, link-local, CGNAT,
 * multicast, unspecified, documentation, benchmarking, reserved, or any address of this host's
 * own interfaces): a webhook must not become a way to probe internal services. IPv6 spellings of
 * an IPv4 address (mapped, IPv4-compatible, NAT64, 6to4) are judged by that address.
 * An allow list (hosts, addresses or CIDRs) lets chosen ones through, e.g. a receiver on
 * 127.0.0.1 in development.
 *
 * The API checks a URL when a session is created or started; the dispatcher checks it again
 * before every attempt (DNS may have changed) and connects to the address it checked, so a
 * rebinding answer between check and connect cannot redirect it.
 */
import { lookup } from "node:dns/promises"
import { BlockList, isIP } from "node:net"
import { networkInterfaces } from "node:os"
import { type CaptureError, captureError } from "@capture/protocol"
import { Data, Result } from "effect"

/** Environment variable holding the allow list: comma-separated hosts, addresses or CIDRs. */
export const ALLOW_HOSTS_ENV = "CAPTURE_WEBHOOK_ALLOW_HOSTS"

/** A resolved address. */
export interface ResolvedAddress {
  readonly address: string
  readonly family: 4 | 6
}

/** What may receive webhooks. */
export interface CallbackUrlPolicy {
  /** Host names (lower case, no trailing dot) allowed whatever they resolve to. */
  readonly allowHosts: ReadonlySet<string>
  /** Addresses and ranges allowed although their class is blocked. */
  readonly allowAddresses: BlockList
  /** Name resolution (default: the system resolver, every address). */
  readonly resolve?: (hostname: string) => Promise<ReadonlyArray<ResolvedAddress>>
  /** This host's own addresses, refused like loopback (default: every interface's, asked each time). */
  readonly localAddresses?: () => ReadonlyArray<string>
}

/** The class of an address webhooks are refused for by default. */
export type BlockedAddressClass =
  | "unspecified"
  | "loopback"
  | "private"
  | "link_local"
  | "cgnat"
  | "multicast"
  | "documentation"
  | "benchmarking"
  | "reserved"
  | "own_interface"

const describeClass: Record<BlockedAddressClass, string> = {
  unspecified: "an unspecified address",
  loopback: "a loopback address",
  private: "a private address",
  link_local: "a link-local address",
  cgnat: "a carrier-grade NAT address",
  multicast: "a multicast address",
  documentation: "a documentation address",
  benchmarking: "a benchmarking address",
  reserved: "a reserved address",
  own_interface: "an address of this host",
}

/** An IPv4 address as an unsigned 32-bit number (the caller has checked it is one). */
const ipv4Value = (address: string): number =>
  address.split(".").reduce((value, octet) => value * 256 + Number(octet), 0)

/** An IPv6 address (any spelling, zone dropped) as a 128-bit number (the caller has checked it is one). */
const ipv6Value = (address: string): bigint => {
  let text = address.split("%")[0] ?? ""
  const lastColon = text.lastIndexOf(":")
  if (text.includes(".")) {
    const v4 = ipv4Value(text.slice(lastColon + 1))
    text = `${text.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`
  }
  const [head = "", tail] = text.split("::")
  const left = head === "" ? [] : head.split(":")
  const right = tail === undefined || tail === "" ? [] : tail.split(":")
  const words = [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right]
  return words.reduce((value, word) => (value << 16n) | BigInt(Number.parseInt(word, 16)), 0n)
}

type Class = Exclude<BlockedAddressClass, "own_interface">

const ipv4Ranges: ReadonlyArray<readonly [Class, string, number]> = [
  ["unspecified", "0.0.0.0", 8],
  ["loopback", "127.0.0.0", 8],
  ["private", "10.0.0.0", 8],
  ["private", "172.16.0.0", 12],
  ["private", "192.168.0.0", 16],
  ["link_local", "169.254.0.0", 16],
  ["cgnat", "100.64.0.0", 10],
  ["multicast", "224.0.0.0", 4],
  ["documentation", "192.0.2.0", 24],
  ["documentation", "198.51.100.0", 24],
  ["documentation", "203.0.113.0", 24],
  ["benchmarking", "198.18.0.0", 15],
  // 240/4 includes the broadcast address; 192.0.0/24 is IETF protocol assignments; 192.88.99/24
  // the retired 6to4 relay anycast.
  ["reserved", "240.0.0.0", 4],
  ["reserved", "192.0.0.0", 24],
  ["reserved", "192.88.99.0", 24],
]

// Checked in order: the more specific blocks inside 2001::/23 come first.
const ipv6Ranges: ReadonlyArray<readonly [Class, string, number]> = [
  ["unspecified", "::", 128],
  ["loopback", "::1", 128],
  ["private", "64:ff9b:1::", 48],
  ["reserved", "100::", 64],
  ["reserved", "2001::", 32],
  ["benchmarking", "2001:2::", 48],
  ["documentation", "2001:db8::", 32],
  ["reserved", "2001::", 23],
  ["documentation", "3fff::", 20],
  ["reserved", "5f00::", 16],
  ["private", "fc00::", 7],
  ["link_local", "fe80::", 10],
  // Site-local, deprecated for the unique local addresses above but still routed inside sites.
  ["private", "fec0::", 10],
  ["multicast", "ff00::", 8],
]

const ipv4Table = ipv4Ranges.map(([name, network, prefix]) => {
  const shift = 32 - prefix
  return { name, prefix: Math.floor(ipv4Value(network) / 2 ** shift), shift }
})
const ipv6Table = ipv6Ranges.map(([name, network, prefix]) => {
  const shift = BigInt(128 - prefix)
  return { name, prefix: ipv6Value(network) >> shift, shift }
})

const classifyIpv4 = (value: number): Class | undefined =>
  ipv4Table.find(({ prefix, shift }) => Math.floor(value / 2 ** shift) === prefix)?.name

/** The IPv4 address an IPv6 address carries, for the forms that route to it. */
const embeddedIpv4 = (value: bigint): { readonly v4: number; readonly compatible: boolean } | undefined => {
  const low32 = Number(value & 0xffffffffn)
  if (value >> 32n === 0xffffn) return { v4: low32, compatible: false } // ::ffff:a.b.c.d, mapped
  if (value >> 32n === 0x64ff9b0000000000000000n) return { v4: low32, compatible: false } // NAT64
  if (value >> 112n === 0x2002n) return { v4: Number((value >> 80n) & 0xffffffffn), compatible: false } // 6to4
  // ::a.b.c.d, IPv4-compatible (deprecated); :: and ::1 are themselves.
  if (value >> 32n === 0n && value > 1n) return { v4: low32, compatible: true }
  return undefined
}

const classifyIpv6 = (value: bigint): Class | undefined => {
  const embedded = embeddedIpv4(value)
  if (embedded !== undefined) {
    return classifyIpv4(embedded.v4) ?? (embedded.compatible ? "reserved" : undefined)
  }
  const listed = ipv6Table.find(({ prefix, shift }) => value >> shift === prefix)?.name
  if (listed !== undefined) return listed
  // Only 2000::/3 is allocated as global unicast.
  return value >> 125n === 1n ? undefined : "reserved"
}

const familyOf = (address: string): "ipv4" | "ipv6" | undefined => {
  const version = isIP(address)
  return version === 4 ? "ipv4" : version === 6 ? "ipv6" : undefined
}

/**
 * The blocked class an IP address falls in, or undefined for a public address (and for anything
 * that is not an IP address). IPv6 forms that carry an IPv4 address (mapped, IPv4-compatible,
 * NAT64, 6to4) are judged by that address; Teredo is refused outright.
 *
 * @example classifyAddress("10.1.2.3") // "private"
 * @example classifyAddress("64:ff9b::a9fe:a9fe") // "link_local" (NAT64 of 169.254.169.254)
 */
export const classifyAddress = (address: string): Class | undefined => {
  const family = familyOf(address)
  if (family === undefined) return undefined
  return family === "ipv4" ? classifyIpv4(ipv4Value(address)) : classifyIpv6(ipv6Value(address))
}

/** Every address of this host's interfaces. */
const systemLocalAddresses = (): ReadonlyArray<string> =>
  Object.values(networkInterfaces()).flatMap((addresses) => (addresses ?? []).map(({ address }) => address))

/** One key per address whatever its spelling (`::ffff:7f00:1` and `::FFFF:127.0.0.1` agree). */
const addressKey = (address: string): string | undefined => {
  const family = familyOf(address)
  if (family === undefined) return undefined
  return family === "ipv4" ? `4:${ipv4Value(address)}` : `6:${ipv6Value(address)}`
}

/** An allow-list entry that is neither a host name, an address nor a CIDR. */
export class InvalidAllowList extends Data.TaggedError("InvalidAllowList")<{
  readonly entry: string
  readonly message: string
}> {}

const hostnamePattern = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/

const normalizeHost = (host: string): string => {
  const lower = host.trim().toLowerCase()
  const unbracketed = lower.startsWith("[") && lower.endsWith("]") ? lower.slice(1, -1) : lower
  return unbracketed.endsWith(".") ? unbracketed.slice(0, -1) : unbracketed
}

/**
 * A policy from an allow list like `127.0.0.1, hooks.internal, 10.8.0.0/16` (the value of
 * `CAPTURE_WEBHOOK_ALLOW_HOSTS`). Empty or undefined: nothing beyond public addresses.
 */
export const parseAllowList = (
  text: string | undefined,
): Result.Result<CallbackUrlPolicy, InvalidAllowList> => {
  const allowHosts = new Set<string>()
  const allowAddresses = new BlockList()
  for (const raw of (text ?? "").split(",")) {
    const entry = raw.trim()
    if (entry === "") continue
    const invalid = (message: string) => Result.fail(new InvalidAllowList({ entry, message }))
    const slash = entry.indexOf("/")
    if (slash >= 0) {
      const network = normalizeHost(entry.slice(0, slash))
      const prefixText = entry.slice(slash + 1)
      const family = familyOf(network)
      const prefix = Number(prefixText)
      const max = family === "ipv4" ? 32 : 128
      if (family === undefined || !/^\d{1,3}$/.test(prefixText) || prefix > max) {
        return invalid(`${ALLOW_HOSTS_ENV}: "${entry}" is not a valid CIDR`)
      }
      allowAddresses.addSubnet(network, prefix, family)
      continue
    }
    const host = normalizeHost(entry)
    const family = familyOf(host)
    if (family !== undefined) {
      allowAddresses.addAddress(host, family)
      allowHosts.add(host)
    } else if (hostnamePattern.test(host)) {
      allowHosts.add(host)
    } else {
      return invalid(`${ALLOW_HOSTS_ENV}: "${entry}" is not a host name, an IP address or a CIDR`)
    }
  }
  return Result.succeed({ allowHosts, allowAddresses })
}

/** The default policy: public http(s) destinations only. */
export const defaultCallbackUrlPolicy: CallbackUrlPolicy = {
  allowHosts: new Set(),
  allowAddresses: new BlockList(),
}

/** The policy `CAPTURE_WEBHOOK_ALLOW_HOSTS` describes. */
export const callbackUrlPolicyFromEnv = (
  env: NodeJS.ProcessEnv = process.env,
): Result.Result<CallbackUrlPolicy, InvalidAllowList> => parseAllowList(env[ALLOW_HOSTS_ENV])

/** Why a URL may not receive webhooks. `reason` is what a delivery attempt records as its error. */
export class CallbackUrlRefused extends Data.TaggedError("CallbackUrlRefused")<{
  readonly reason: "invalid_url" | "unsupported_scheme" | "blocked_address" | "unresolvable"
  readonly message: string
}> {}

/** A URL that passed the policy, with the addresses it was checked against (connect to these). */
export interface CheckedCallbackUrl {
  readonly url: URL
  readonly addresses: ReadonlyArray<ResolvedAddress>
}

const systemResolve = async (hostname: string): Promise<ReadonlyArray<ResolvedAddress>> =>
  (await lookup(hostname, { all: true, verbatim: true })).map(({ address, family }) => ({
    address,
    family: family === 6 ? 6 : 4,
  }))

/**
 * Parses, resolves and checks a callback URL. Refused when the scheme is not http(s), the host
 * does not resolve, or any address it resolves to is blocked and not allowed.
 */
export const resolveCallbackUrl = async (
  input: string,
  policy: CallbackUrlPolicy,
): Promise<Result.Result<CheckedCallbackUrl, CallbackUrlRefused>> => {
  const refuse = (reason: CallbackUrlRefused["reason"], message: string) =>
    Result.fail(new CallbackUrlRefused({ reason, message }))
  let url: URL
  try {
    url = new URL(input)
  } catch {
    return refuse("invalid_url", "callback_url is not a valid absolute URL")
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return refuse(
      "unsupported_scheme",
      `callback_url must use http or https, not ${url.protocol.slice(0, -1)}`,
    )
  }
  const host = normalizeHost(url.hostname)
  if (host === "") return refuse("invalid_url", "callback_url has no host")
  const literal = familyOf(host)
  let addresses: ReadonlyArray<ResolvedAddress>
  if (literal !== undefined) {
    addresses = [{ address: host, family: literal === "ipv4" ? 4 : 6 }]
  } else {
    try {
      addresses = await (policy.resolve ?? systemResolve)(host)
    } catch (error) {
      const code = (error as { code?: unknown }).code
      return refuse("unresolvable", `callback_url host ${host} does not resolve (${String(code ?? error)})`)
    }
    if (addresses.length === 0) return refuse("unresolvable", `callback_url host ${host} does not resolve`)
  }
  if (!policy.allowHosts.has(host)) {
    const own = new Set((policy.localAddresses ?? systemLocalAddresses)().map(addressKey))
    for (const { address, family } of addresses) {
      const blocked = own.has(addressKey(address)) ? "own_interface" : classifyAddress(address)
      if (blocked !== undefined && !policy.allowAddresses.check(address, family === 4 ? "ipv4" : "ipv6")) {
        return refuse(
          "blocked_address",
          `callback_url host ${host} resolves to ${address}, ${describeClass[blocked]}; ` +
            `add it to ${ALLOW_HOSTS_ENV} to allow it`,
        )
      }
    }
  }
  return Result.succeed({ url, addresses })
}

/**
 * The API's check of a `callback_url`: the parsed URL, or an `invalid_callback_url` error naming
 * `field`.
 *
 * @example await checkCallbackUrl("ftp://example.com/", policy) // Failure: invalid_callback_url
 */
export const checkCallbackUrl = async (
  input: string,
  policy: CallbackUrlPolicy,
  field = "callback_url",
): Promise<Result.Result<URL, CaptureError>> => {
  const checked = await resolveCallbackUrl(input, policy)
  return Result.isSuccess(checked)
    ? Result.succeed(checked.success.url)
    : Result.fail(captureError("invalid_callback_url", checked.failure.message, { field }))
}
