/**
 * Which `callback_url`s webhooks may be sent to. Only http(s), and by default never a host that
 * resolves to an address inside the deployment's reach (loopback, private, link-local, CGNAT,
 * multicast, unspecified, reserved): a webhook must not become a way to probe internal services.
 * An allow list (hosts, addresses or CIDRs) lets chosen ones through, e.g. a receiver on
 * 127.0.0.1 in development.
 *
 * The API checks a URL when a session is created or started; the dispatcher checks it again
 * before every attempt (DNS may have changed) and connects to the address it checked, so a
 * rebinding answer between check and connect cannot redirect it.
 */
import { lookup } from "node:dns/promises"
import { BlockList, isIP } from "node:net"
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
}

/** The class of an address webhooks are refused for by default. */
export type BlockedAddressClass =
  | "unspecified"
  | "loopback"
  | "private"
  | "link_local"
  | "cgnat"
  | "multicast"
  | "reserved"

const ranges: ReadonlyArray<readonly [BlockedAddressClass, string, number, "ipv4" | "ipv6"]> = [
  ["unspecified", "0.0.0.0", 8, "ipv4"],
  ["unspecified", "::", 128, "ipv6"],
  ["loopback", "127.0.0.0", 8, "ipv4"],
  ["loopback", "::1", 128, "ipv6"],
  ["private", "10.0.0.0", 8, "ipv4"],
  ["private", "172.16.0.0", 12, "ipv4"],
  ["private", "192.168.0.0", 16, "ipv4"],
  ["private", "fc00::", 7, "ipv6"],
  ["link_local", "169.254.0.0", 16, "ipv4"],
  ["link_local", "fe80::", 10, "ipv6"],
  ["cgnat", "100.64.0.0", 10, "ipv4"],
  ["multicast", "224.0.0.0", 4, "ipv4"],
  ["multicast", "ff00::", 8, "ipv6"],
  // 240/4 includes the broadcast address; 192.0.0/24 is IETF protocol assignments.
  ["reserved", "240.0.0.0", 4, "ipv4"],
  ["reserved", "192.0.0.0", 24, "ipv4"],
]

// One list per class, so a match can say why. BlockList also matches IPv4-mapped IPv6 (::ffff:a.b.c.d).
const classLists: ReadonlyArray<readonly [BlockedAddressClass, BlockList]> = (() => {
  const lists = new Map<BlockedAddressClass, BlockList>()
  for (const [name, network, prefix, type] of ranges) {
    const list = lists.get(name) ?? new BlockList()
    list.addSubnet(network, prefix, type)
    lists.set(name, list)
  }
  return [...lists]
})()

const familyOf = (address: string): "ipv4" | "ipv6" | undefined => {
  const version = isIP(address)
  return version === 4 ? "ipv4" : version === 6 ? "ipv6" : undefined
}

/**
 * The blocked class an IP address falls in, or undefined for a public address (and for anything
 * that is not an IP address).
 *
 * @example classifyAddress("10.1.2.3") // "private"
 */
export const classifyAddress = (address: string): BlockedAddressClass | undefined => {
  const family = familyOf(address)
  if (family === undefined) return undefined
  return classLists.find(([, list]) => list.check(address, family))?.[0]
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
    for (const { address, family } of addresses) {
      const blocked = classifyAddress(address)
      if (blocked !== undefined && !policy.allowAddresses.check(address, family === 4 ? "ipv4" : "ipv6")) {
        return refuse(
          "blocked_address",
          `callback_url host ${host} resolves to ${address}, a ${blocked.replace("_", "-")} address; ` +
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
