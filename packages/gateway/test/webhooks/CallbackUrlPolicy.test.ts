import { networkInterfaces } from "node:os"
import { Result } from "effect"
import { describe, expect, it } from "vitest"
import {
  type CallbackUrlPolicy,
  callbackUrlPolicyFromEnv,
  checkCallbackUrl,
  classifyAddress,
  defaultCallbackUrlPolicy,
  parseAllowList,
  resolveCallbackUrl,
} from "../../src/webhooks/CallbackUrlPolicy.js"

const policy = (allowList: string): CallbackUrlPolicy => Result.getOrThrow(parseAllowList(allowList))

/** A policy whose DNS answers from a table (no network). */
const withDns = (
  base: CallbackUrlPolicy,
  table: Record<string, ReadonlyArray<string>>,
): CallbackUrlPolicy => ({
  ...base,
  resolve: async (hostname) => {
    const addresses = table[hostname]
    if (addresses === undefined) throw Object.assign(new Error("not found"), { code: "ENOTFOUND" })
    return addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }))
  },
})

const refusal = async (url: string, p: CallbackUrlPolicy = defaultCallbackUrlPolicy) => {
  const checked = await resolveCallbackUrl(url, p)
  return Result.isFailure(checked) ? checked.failure.reason : "allowed"
}

describe("classifyAddress", () => {
  it.each([
    // IPv4
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback"],
    ["10.1.2.3", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["169.254.169.254", "link_local"],
    ["0.0.0.0", "unspecified"],
    ["0.1.2.3", "unspecified"],
    ["100.64.0.1", "cgnat"],
    ["100.127.255.255", "cgnat"],
    ["224.0.0.251", "multicast"],
    ["239.255.255.250", "multicast"],
    ["255.255.255.255", "reserved"],
    ["240.0.0.1", "reserved"],
    ["192.0.0.8", "reserved"],
    ["192.88.99.1", "reserved"],
    ["198.18.0.1", "benchmarking"],
    ["198.19.255.255", "benchmarking"],
    ["192.0.2.1", "documentation"],
    ["198.51.100.7", "documentation"],
    ["203.0.113.9", "documentation"],
    // IPv6
    ["::", "unspecified"],
    ["::1", "loopback"],
    ["0:0:0:0:0:0:0:1", "loopback"],
    ["fc00::1", "private"],
    ["fd12:3456::1", "private"],
    ["fec0::1", "private"],
    ["feff::1", "private"],
    ["fe80::1", "link_local"],
    ["fe80::1%eth0", "link_local"],
    ["febf::1", "link_local"],
    ["ff02::1", "multicast"],
    ["ff0e::1", "multicast"],
    ["2001:db8::1", "documentation"],
    ["3fff::1", "documentation"],
    ["2001:2::1", "benchmarking"],
    ["100::1", "reserved"],
    ["5f00::1", "reserved"],
    ["1::1", "reserved"],
    ["4000::1", "reserved"],
    // Teredo tunnels to whatever the embedded (obfuscated) address says: refused outright.
    ["2001::1", "reserved"],
    ["2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved"],
    // IPv4 inside IPv6: the embedded address decides.
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:7f00:1", "loopback"],
    ["::ffff:10.0.0.1", "private"],
    ["::ffff:a9fe:a9fe", "link_local"],
    ["::7f00:1", "loopback"],
    ["::127.0.0.1", "loopback"],
    ["::a9fe:a9fe", "link_local"],
    ["::8.8.8.8", "reserved"],
    ["64:ff9b::a9fe:a9fe", "link_local"],
    ["64:ff9b::127.0.0.1", "loopback"],
    ["64:ff9b::c612:1", "benchmarking"],
    ["64:ff9b:1::1", "private"],
    ["2002:7f00:1::", "loopback"],
    ["2002:a9fe:a9fe::1", "link_local"],
    ["2002:c000:0201::1", "documentation"],
  ])("%s is %s", (address, kind) => {
    expect(classifyAddress(address)).toBe(kind)
  })

  it.each([
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "172.32.0.1",
    "100.128.0.1",
    "198.17.255.255",
    "198.20.0.1",
    "192.0.3.1",
    "203.0.114.1",
    "2606:4700::1111",
    "2a00:1450:4001:81a::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::8.8.8.8",
    "64:ff9b::5db8:d822",
    "2002:5db8:d822::1",
    "not-an-ip",
    "",
  ])("%s is not blocked", (address) => {
    expect(classifyAddress(address)).toBeUndefined()
  })
})

describe("resolveCallbackUrl and checkCallbackUrl", () => {
  it("refuses schemes other than http and https, and what is not a URL", async () => {
    expect(await refusal("ftp://example.com/hook")).toBe("unsupported_scheme")
    expect(await refusal("file:///etc/passwd")).toBe("unsupported_scheme")
    expect(await refusal("javascript:alert(1)")).toBe("unsupported_scheme")
    expect(await refusal("not a url")).toBe("invalid_url")
    expect(await refusal("/relative/path")).toBe("invalid_url")
  })

  it("refuses private, link-local, loopback and other internal addresses", async () => {
    expect(await refusal("http://10.0.0.8/hook")).toBe("blocked_address")
    expect(await refusal("http://169.254.169.254/latest/meta-data")).toBe("blocked_address")
    expect(await refusal("http://[::1]:8080/hook")).toBe("blocked_address")
    expect(await refusal("http://[::ffff:127.0.0.1]/hook")).toBe("blocked_address")
    expect(await refusal("http://[fd00::5]/hook")).toBe("blocked_address")
    expect(await refusal("http://100.100.1.1/hook")).toBe("blocked_address")
    expect(await refusal("http://0.0.0.0:3000/")).toBe("blocked_address")
    // Other spellings of 127.0.0.1 normalise to it.
    expect(await refusal("http://2130706433/")).toBe("blocked_address")
    expect(await refusal("http://0x7f.1/")).toBe("blocked_address")
  })

  it.each([
    "http://[::7f00:1]/",
    "http://[::127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",
    "http://[64:ff9b::169.254.169.254]/",
    "http://[2002:7f00:1::]/",
    "http://[2001::1]/",
    "http://[fec0::1]/",
    "http://[ff02::1]/",
    "http://198.18.0.1/",
    "http://198.19.1.1/",
    "http://198.51.100.1/",
    "http://203.0.113.1/",
    "http://192.0.2.1/",
    "http://224.0.0.1/",
    "http://[2001:db8::1]/",
  ])("refuses %s", async (url) => {
    expect(await refusal(url)).toBe("blocked_address")
  })

  it("refuses every address of this host's interfaces, literally and through a name", async () => {
    const own = Object.values(networkInterfaces())
      .flatMap((addresses) => addresses ?? [])
      .map(({ address }) => address)
    expect(own.length).toBeGreaterThan(0)
    for (const address of own) {
      const host = address.includes(":") ? `[${address}]` : address
      if (address.includes("%")) continue
      expect(await refusal(`http://${host}:8080/hook`), address).toBe("blocked_address")
    }
    // A public address the host owns (say on a cloud VM) is this host, too.
    const host: CallbackUrlPolicy = { ...defaultCallbackUrlPolicy, localAddresses: () => ["93.184.216.34"] }
    const checked = await resolveCallbackUrl("http://93.184.216.34/hook", host)
    expect(Result.isFailure(checked) && checked.failure.message).toMatch(/an address of this host/)
    expect(
      await refusal("https://me.example.com/", withDns(host, { "me.example.com": ["93.184.216.34"] })),
    ).toBe("blocked_address")
    expect(await refusal("https://93.184.216.35/", host)).toBe("allowed")
  })

  it("refuses localhost (through the system resolver)", async () => {
    expect(await refusal("http://localhost:3000/hook")).toBe("blocked_address")
  })

  it("refuses a name that resolves to an internal address, even among public ones", async () => {
    const dns = withDns(defaultCallbackUrlPolicy, {
      "hooks.example.com": ["93.184.216.34"],
      "rebind.example.com": ["93.184.216.34", "10.0.0.7"],
    })
    expect(await refusal("https://hooks.example.com/x", dns)).toBe("allowed")
    expect(await refusal("https://rebind.example.com/x", dns)).toBe("blocked_address")
    expect(await refusal("https://missing.example.com/x", dns)).toBe("unresolvable")
  })

  it("lets public addresses through and returns the addresses to connect to", async () => {
    const checked = await resolveCallbackUrl("https://93.184.216.34:8443/hooks?x=1", defaultCallbackUrlPolicy)
    expect(Result.isSuccess(checked) && checked.success.url.href).toBe("https://93.184.216.34:8443/hooks?x=1")
    expect(Result.isSuccess(checked) && checked.success.addresses).toEqual([
      { address: "93.184.216.34", family: 4 },
    ])
  })

  it("lets through a host on the allow list, whatever it resolves to", async () => {
    const p = withDns(policy("hooks.internal, LocalHost"), {
      "hooks.internal": ["10.1.1.1"],
      localhost: ["127.0.0.1", "::1"],
    })
    expect(await refusal("http://hooks.internal/x", p)).toBe("allowed")
    expect(await refusal("http://localhost:9000/x", p)).toBe("allowed")
    expect(await refusal("http://other.internal/x", p)).toBe("unresolvable")
  })

  it("lets through addresses in an allowed address or CIDR, and nothing else", async () => {
    const p = withDns(policy("127.0.0.1, 10.8.0.0/16, fd00::/8"), {
      "svc.local": ["10.8.3.4"],
      "db.local": ["10.9.0.1"],
    })
    expect(await refusal("http://127.0.0.1:4000/x", p)).toBe("allowed")
    expect(await refusal("http://127.0.0.2:4000/x", p)).toBe("blocked_address")
    expect(await refusal("http://10.8.200.1/x", p)).toBe("allowed")
    expect(await refusal("http://10.9.0.1/x", p)).toBe("blocked_address")
    expect(await refusal("http://svc.local/x", p)).toBe("allowed")
    expect(await refusal("http://db.local/x", p)).toBe("blocked_address")
    expect(await refusal("http://[fd00::1]/x", p)).toBe("allowed")
    expect(await refusal("ftp://127.0.0.1/x", p)).toBe("unsupported_scheme")
  })

  it("answers the API with invalid_callback_url naming the field", async () => {
    const refused = await checkCallbackUrl("http://10.0.0.1/hook", defaultCallbackUrlPolicy, "callback_url")
    expect(Result.isFailure(refused) && refused.failure).toMatchObject({
      _tag: "CaptureError",
      error_code: "invalid_callback_url",
      field: "callback_url",
    })
    const scheme = await checkCallbackUrl("ftp://example.com/", defaultCallbackUrlPolicy)
    expect(Result.isFailure(scheme) && scheme.failure.message).toMatch(/http or https/)
    const ok = await checkCallbackUrl("https://93.184.216.34/hook", defaultCallbackUrlPolicy)
    expect(Result.isSuccess(ok) && ok.success).toBeInstanceOf(URL)
  })
})

describe("parseAllowList", () => {
  it("reads CAPTURE_WEBHOOK_ALLOW_HOSTS, and nothing when it is unset or empty", async () => {
    const fromEnv = Result.getOrThrow(
      callbackUrlPolicyFromEnv({ CAPTURE_WEBHOOK_ALLOW_HOSTS: " 127.0.0.1 ,, " }),
    )
    expect(await refusal("http://127.0.0.1/x", fromEnv)).toBe("allowed")
    const unset = Result.getOrThrow(callbackUrlPolicyFromEnv({}))
    expect(await refusal("http://127.0.0.1/x", unset)).toBe("blocked_address")
  })

  it.each(["10.0.0.0/33", "10.0.0.0/x", "300.1.1.1/8", "not a host", "fe80::/129"])("refuses %s", (entry) => {
    const parsed = parseAllowList(`127.0.0.1,${entry}`)
    expect(Result.isFailure(parsed) && parsed.failure).toMatchObject({ _tag: "InvalidAllowList", entry })
  })
})
