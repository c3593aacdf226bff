import { describe, expect, it } from "vitest"
import { TrustedProxies } from "../../src/api/ClientAddress.js"

describe("TrustedProxies", () => {
  const proxies = TrustedProxies.parse("10.0.0.0/8, 127.0.0.1, fd00::/8")

  it("takes the peer as the client when it is no trusted proxy, whatever X-Forwarded-For says", () => {
    expect(proxies.clientAddress("203.0.113.9", "198.51.100.1")).toBe("203.0.113.9")
    expect(TrustedProxies.none.clientAddress("127.0.0.1", "198.51.100.1")).toBe("127.0.0.1")
  })

  it("takes the nearest hop that is no trusted proxy, so a client's own header entries do not count", () => {
    // The client wrote 1.2.3.4 itself; the proxy at 127.0.0.1 appended the address it saw.
    expect(proxies.clientAddress("127.0.0.1", "1.2.3.4, 198.51.100.7")).toBe("198.51.100.7")
    expect(proxies.clientAddress("::ffff:127.0.0.1", "198.51.100.7, 10.1.2.3")).toBe("198.51.100.7")
    expect(proxies.clientAddress("fd00::5", "2001:db8::1")).toBe("2001:db8::1")
  })

  it("stops at the last proxy when a hop is malformed or every hop is a proxy", () => {
    expect(proxies.clientAddress("127.0.0.1", "10.0.0.2, not-an-address")).toBe("127.0.0.1")
    expect(proxies.clientAddress("127.0.0.1", "10.0.0.2")).toBe("10.0.0.2")
    expect(proxies.clientAddress("127.0.0.1", undefined)).toBe("127.0.0.1")
  })

  it("refuses an entry that is no address or range, naming it", () => {
    expect(() => TrustedProxies.parse("10.0.0.0/33")).toThrow(/"10.0.0.0\/33"/)
    expect(() => TrustedProxies.parse("proxy.local")).toThrow(/"proxy.local"/)
    expect(() => TrustedProxies.parse("::1/129")).toThrow(/not an IP address or CIDR range/)
    expect(TrustedProxies.parse(" ").size).toBe(0)
  })
})
