import { afterEach, describe, expect, it } from "vitest"
import { rtmpOptionsFromEnv, whipOptionsFromEnv } from "../src/serve/GatewayEnv.js"

const RTMP = ["CAPTURE_RTMP_PORT", "CAPTURE_RTMP_HOST", "CAPTURE_RTMP_PUBLIC_URL", "CAPTURE_RTMP_GRACE_MS"]
const WHIP = ["CAPTURE_WHIP_ICE_ADDRESSES", "CAPTURE_WHIP_ICE_PORTS", "CAPTURE_WHIP_GRACE_MS"]
const saved = Object.fromEntries([...RTMP, ...WHIP].map((name) => [name, process.env[name]]))

afterEach(() => {
  for (const name of [...RTMP, ...WHIP]) {
    if (saved[name] === undefined) delete process.env[name]
    else process.env[name] = saved[name]
  }
})

describe("the RTMP settings from the environment", () => {
  it("listens for nothing unless CAPTURE_RTMP_PORT is set", () => {
    for (const name of RTMP) delete process.env[name]
    expect(rtmpOptionsFromEnv("0.0.0.0")).toBeUndefined()
  })

  it("listens on serve's host by default and tells publishers a loopback URL for a wildcard host", () => {
    for (const name of RTMP) delete process.env[name]
    process.env.CAPTURE_RTMP_PORT = "1935"
    expect(rtmpOptionsFromEnv("0.0.0.0")).toEqual({
      host: "0.0.0.0",
      port: 1935,
      publicUrl: "rtmp://127.0.0.1:1935/live",
      graceMs: 10_000,
    })
    process.env.CAPTURE_RTMP_HOST = "127.0.0.1"
    process.env.CAPTURE_RTMP_PUBLIC_URL = "rtmp://capture.example.com:443/live"
    process.env.CAPTURE_RTMP_GRACE_MS = "30000"
    expect(rtmpOptionsFromEnv("0.0.0.0")).toEqual({
      host: "127.0.0.1",
      port: 1935,
      publicUrl: "rtmp://capture.example.com:443/live",
      graceMs: 30_000,
    })
  })

  it("stops serve on a malformed value, naming the variable", () => {
    for (const name of RTMP) delete process.env[name]
    for (const port of ["x", "-1", "70000", "1.5"]) {
      process.env.CAPTURE_RTMP_PORT = port
      expect(() => rtmpOptionsFromEnv("127.0.0.1")).toThrow(/CAPTURE_RTMP_PORT/)
    }
    process.env.CAPTURE_RTMP_PORT = "1935"
    process.env.CAPTURE_RTMP_PUBLIC_URL = "http://example.com/live"
    expect(() => rtmpOptionsFromEnv("127.0.0.1")).toThrow(/CAPTURE_RTMP_PUBLIC_URL/)
  })
})

describe("the WHIP settings from the environment", () => {
  it("takes no WHIP publishes unless CAPTURE_WHIP_ICE_ADDRESSES is set", () => {
    for (const name of WHIP) delete process.env[name]
    expect(whipOptionsFromEnv()).toBeUndefined()
    process.env.CAPTURE_WHIP_ICE_ADDRESSES = " "
    expect(whipOptionsFromEnv()).toBeUndefined()
  })

  it("reads the addresses, the port range and the grace period", () => {
    for (const name of WHIP) delete process.env[name]
    process.env.CAPTURE_WHIP_ICE_ADDRESSES = "127.0.0.1, 192.0.2.10"
    expect(whipOptionsFromEnv()).toEqual({
      iceAddresses: ["127.0.0.1", "192.0.2.10"],
      icePortRange: undefined,
      graceMs: 10_000,
    })
    process.env.CAPTURE_WHIP_ICE_PORTS = "40000-40100"
    process.env.CAPTURE_WHIP_GRACE_MS = "20000"
    expect(whipOptionsFromEnv()).toEqual({
      iceAddresses: ["127.0.0.1", "192.0.2.10"],
      icePortRange: [40_000, 40_100],
      graceMs: 20_000,
    })
  })

  it("stops serve on a malformed value, naming the variable", () => {
    for (const name of WHIP) delete process.env[name]
    process.env.CAPTURE_WHIP_ICE_ADDRESSES = "127.0.0.1,capture.example.com"
    expect(() => whipOptionsFromEnv()).toThrow(/CAPTURE_WHIP_ICE_ADDRESSES/)
    process.env.CAPTURE_WHIP_ICE_ADDRESSES = "127.0.0.1"
    for (const ports of ["40000", "40100-40000", "0-10", "1-70000", "a-b"]) {
      process.env.CAPTURE_WHIP_ICE_PORTS = ports
      expect(() => whipOptionsFromEnv()).toThrow(/CAPTURE_WHIP_ICE_PORTS/)
    }
  })
})
