/**
 * Request bounds (issue 15, defect 4): oversized or deep JSON, huge metadata and too many or too
 * long channels are refused with a stable code naming the field, never a 5xx, and whatever passes
 * fits in a NATS message, so the projector keeps every view current.
 */
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DEFAULT_LIMITS, startGateway } from "../../src/index.js"
import { gatewayOptions, startTestGateway, type TestGateway } from "./TestGateway.js"

let nats: NatsServerHandle
let api: TestGateway

beforeAll(async () => {
  nats = await startNatsServer()
  // The limits `capture serve` runs with.
  api = await startTestGateway(nats.url, { maxJsonBytes: DEFAULT_LIMITS.maxJsonBytes })
}, 60_000)
afterAll(async () => {
  await api?.stop()
  await nats?.stop()
})

const data = (body: Record<string, unknown>) => body.data as Record<string, unknown>
const nested = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`

const createSession = async (body: Record<string, unknown>) => {
  const created = await api.request("POST", "/collection/default/capture/session", { body })
  expect(created.status).toBe(200)
  return data(created.body).id as string
}

const eventually = async <A>(f: () => Promise<A | undefined>, timeoutMs = 10_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await f()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error("condition not met in time")
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe("JSON bodies", () => {
  it("answers a body over the size limit with 413 payload_too_large", async () => {
    const refused = await api.request("POST", "/collection/default/capture/session", {
      body: { end_user_id: "u", metadata: { blob: "x".repeat(DEFAULT_LIMITS.maxJsonBytes + 1) } },
    })
    expect(refused).toMatchObject({
      status: 413,
      body: { success: false, error_code: "payload_too_large", field: "body" },
    })
  })

  it("refuses nesting deeper than the limit with 400 invalid_json naming the member, never a 5xx", async () => {
    for (const depth of [5_000, 4_000, DEFAULT_LIMITS.maxJsonDepth]) {
      // The root object is one level: the metadata array starts at the second.
      const refused = await api.request("POST", "/collection/default/capture/session", {
        raw: `{"end_user_id":"u","metadata":{"a":${nested(depth)}}}`,
      })
      expect({ depth, ...refused }).toMatchObject({
        depth,
        status: 400,
        body: { success: false, error_code: "invalid_json", field: "metadata" },
      })
    }
    const deepest = await api.request("POST", "/collection/default/capture/session", {
      raw: `{"end_user_id":"u","metadata":{"a":${nested(DEFAULT_LIMITS.maxJsonDepth - 2)}}}`,
    })
    expect(deepest.status).toBe(200)
    // Brackets inside strings are text, not nesting.
    const inText = await api.request("POST", "/collection/default/capture/session", {
      body: { end_user_id: "u", metadata: { a: nested(1_000), 'b\\"[': "{{{{" } },
    })
    expect(inText.status).toBe(200)
    const topLevel = await api.request("POST", "/capture/session/start", { raw: nested(100) })
    expect(topLevel).toMatchObject({ status: 400, body: { error_code: "invalid_json", field: "body" } })
  })

  it("refuses ~1 MB of metadata with 400 naming metadata, writing nothing", async () => {
    const refused = await api.request("POST", "/collection/default/capture/session", {
      body: { end_user_id: "big-metadata", metadata: { blob: "x".repeat(1_000_000) } },
    })
    expect(refused).toMatchObject({
      status: 400,
      body: { success: false, error_code: "invalid_field", field: "metadata" },
    })
    const over = await api.request("POST", "/collection/default/capture/session", {
      body: { end_user_id: "big-metadata", metadata: { blob: "x".repeat(DEFAULT_LIMITS.maxMetadataBytes) } },
    })
    expect(over).toMatchObject({ status: 400, body: { field: "metadata" } })
    const listed = await api.request("GET", "/collection/default/capture/session?end_user_id=big-metadata")
    expect(data(listed.body).sessions).toEqual([])
  })

  it("refuses 30 channels and 32 KB channel names with 400 naming the field", async () => {
    const id = await createSession({ end_user_id: "u" })
    const start = (channels: ReadonlyArray<Record<string, unknown>>) =>
      api.request("POST", "/capture/session/start", { body: { session_id: id, channels } })
    const thirty = Array.from({ length: 30 }, (_, i) => ({
      channel_id: `display:${i}`,
      channel_name: "n".repeat(32_000),
    }))
    expect(await start(thirty)).toMatchObject({
      status: 400,
      body: { error_code: "invalid_field", field: "channels" },
    })
    expect(
      await start([
        { channel_id: "mic:default" },
        { channel_id: "display:1", channel_name: "n".repeat(DEFAULT_LIMITS.maxChannelNameLength + 1) },
      ]),
    ).toMatchObject({ status: 400, body: { error_code: "invalid_field", field: "channels[1].channel_name" } })
    expect(await start([{ channel_id: "display:1", name: "n".repeat(32_000) }])).toMatchObject({
      status: 400,
      body: { error_code: "invalid_field", field: "channels[0].name" },
    })
    expect((await api.runtime.host.load(id)).state.value).toBe("created")
  })

  it("keeps a session at every bound projectable: its view follows it to stopped", async () => {
    // The costliest text there is: every character is escaped as \u00XX on the wire.
    const escaped = (length: number) => "\u0001".repeat(length)
    const metadataText = (value: string) => JSON.stringify({ blob: value })
    // Six bytes a character (`\u0001`): computed, not searched for by shortening a string one
    // character at a time, which held this process's event loop for seconds (quadratic) while a
    // kept-alive connection from the tests before idled past the server's 5 s keep-alive; the
    // next request then crossed the server's close and failed with ECONNRESET.
    const blob = escaped(Math.floor((DEFAULT_LIMITS.maxMetadataBytes - metadataText("").length) / 6))
    expect(Buffer.byteLength(metadataText(blob))).toBeGreaterThan(DEFAULT_LIMITS.maxMetadataBytes - 6)
    expect(Buffer.byteLength(metadataText(blob))).toBeLessThanOrEqual(DEFAULT_LIMITS.maxMetadataBytes)
    const id = await createSession({
      // No control characters in an end user id; a lone surrogate is escaped as \uXXXX all the same.
      end_user_id: "\ud800".repeat(256),
      client_id: escaped(256),
      callback_url: `http://127.0.0.1:9/${"a".repeat(2000)}`,
      metadata: { blob },
    })
    const channels = Array.from({ length: DEFAULT_LIMITS.maxChannels }, (_, i) => ({
      channel_id: i === 0 ? "display:1" : `mic:${"m".repeat(62)}${String(i).padStart(2, "0")}`,
      channel_name: escaped(DEFAULT_LIMITS.maxChannelNameLength),
    }))
    const started = await api.request("POST", "/capture/session/start", {
      body: { session_id: id, channels },
    })
    expect(started.status).toBe(200)
    expect((await api.request("POST", `/capture/session/${id}/stop`)).status).toBe(200)
    const view = await eventually(async () => {
      const record = await api.runtime.readModel.get(id as never)
      return record?.session.status === "stopped" ? record.session : undefined
    })
    expect(view.channels).toHaveLength(DEFAULT_LIMITS.maxChannels)
    expect(view.metadata).toEqual({ blob })
  })

  it("refuses to start with limits whose largest session would not fit in a NATS message", async () => {
    await expect(
      startGateway(api.runtime, { ...gatewayOptions(api.url), maxMetadataBytes: 8 * 1024 * 1024 }),
    ).rejects.toThrow(/max_payload/)
  })
})
