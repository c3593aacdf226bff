import { createHash } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { SessionId } from "@capture/protocol"
import { SILENT_STOP_REASON } from "@capture/session-actor"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { encodeTestSegments, startTestGateway, type TestGateway } from "./TestGateway.js"

let nats: NatsServerHandle
let api: TestGateway
let dir: string
/** Three real one-second MPEG-TS segments of one video stream. */
let segments: Array<Uint8Array>

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "capture-ingest-"))
  segments = encodeTestSegments(dir, 3)
  nats = await startNatsServer()
  api = await startTestGateway(nats.url)
}, 60_000)
afterAll(async () => {
  await api?.stop()
  await nats?.stop()
  rmSync(dir, { recursive: true, force: true })
})

const data = (body: Record<string, unknown>) => body.data as Record<string, unknown>
const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

const upload = async (
  sessionId: string,
  channelId: string,
  index: number,
  bytes: Uint8Array,
  options: { token?: string; headers?: Record<string, string> } = {},
) => {
  const response = await fetch(
    `${api.url}/capture/session/${sessionId}/channels/${encodeURIComponent(channelId)}/segments/${index}`,
    {
      method: "PUT",
      headers: {
        "x-access-token": options.token ?? "sk-test-gateway-key",
        "content-type": "video/mp2t",
        "x-segment-start-ms": String(1_763_000_000_000 + index * 1000),
        "x-segment-duration-ms": "1000",
        "x-segment-sha256": sha(bytes),
        ...options.headers,
      },
      body: bytes,
    },
  )
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

const newSession = async (
  endUser = "user-a",
  channels = [{ channel_id: "display:1" }, { channel_id: "mic:default" }],
) => {
  const created = await api.request("POST", "/collection/default/capture/session", {
    body: { end_user_id: endUser },
  })
  const id = data(created.body).id as string
  const started = await api.request("POST", "/capture/session/start", { body: { session_id: id, channels } })
  expect(started.status).toBe(200)
  return id
}

const stored = async (id: string) => (await api.gateway.services.media.list(id)).length

describe("media ingest", () => {
  it("stores segments idempotently, activates the session, and serves a live playlist", async () => {
    const id = await newSession()
    const first = await upload(id, "display:1", 0, segments[0] as Uint8Array)
    expect(first).toMatchObject({
      status: 200,
      body: { success: true, data: { index: 0, duplicate: false } },
    })
    expect((await api.runtime.host.load(id)).state.value).toBe("active")
    const again = await upload(id, "display:1", 0, segments[0] as Uint8Array)
    expect(again.body).toMatchObject({ data: { duplicate: true } })
    expect((await upload(id, "display:1", 1, segments[1] as Uint8Array)).status).toBe(200)
    expect(await stored(id)).toBe(2)

    const view = await api.request("GET", `/capture/session/${id}`)
    const channels = data(view.body).channels as Array<{ channel_id: string; stream_url: string | null }>
    const display = channels.find((c) => c.channel_id === "display:1")
    expect(channels.find((c) => c.channel_id === "mic:default")?.stream_url).toBeNull()
    const playlist = await fetch(display?.stream_url ?? "")
    expect(playlist.status).toBe(200)
    const text = await playlist.text()
    expect(text).toContain("#EXTM3U")
    expect(text).not.toContain("#EXT-X-ENDLIST")
    const segmentLines = text.split("\n").filter((line) => line.startsWith("0.ts") || line.startsWith("1.ts"))
    expect(segmentLines).toHaveLength(2)
    const fetched = await fetch(new URL(segmentLines[0] ?? "", display?.stream_url ?? "").toString())
    expect(sha(new Uint8Array(await fetched.arrayBuffer()))).toBe(sha(segments[0] as Uint8Array))
    // A playlist URL with its signature tampered with is refused.
    const tampered = (display?.stream_url ?? "").replace(
      /sig=(.)/,
      (_, c: string) => `sig=${c === "A" ? "B" : "A"}`,
    )
    expect((await fetch(tampered)).status).toBe(401)
  })

  it("finishes the stop as soon as every channel's final segment is in", async () => {
    const id = await newSession("user-a", [{ channel_id: "display:1" }])
    await upload(id, "display:1", 0, segments[0] as Uint8Array)
    await upload(id, "display:1", 1, segments[1] as Uint8Array, { headers: { "x-segment-final": "1" } })
    const stopping = await api.request("POST", `/capture/session/${id}/stop`)
    expect(["stopping", "stopped"]).toContain(data(stopping.body).status)
    // The session reactor sees every final segment in and finishes the stop (no stop timeout).
    await expect.poll(async () => (await api.runtime.host.load(id)).state.value).toBe("stopped")
    expect((await api.runtime.host.load(id)).state.context.stop_reason).toBe("requested")
  })

  it("stops, with its reason, an active session whose recorder went silent", async () => {
    const id = await newSession("user-a", [{ channel_id: "display:1" }])
    await upload(id, "display:1", 0, segments[0] as Uint8Array)
    const reactor = api.runtime.reactor
    if (reactor === undefined) throw new Error("the test gateway runs a session reactor")
    // Wait for the projector to list it as active, then look from "now" and from 11 s later.
    for (let i = 0; (await api.runtime.readModel.get(id))?.session.status !== "active"; i++) {
      if (i > 100) throw new Error("never projected as active")
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    expect(await reactor.checkSilence(id as SessionId)).toBe(false)
    expect(await reactor.checkSilence(id as SessionId, Date.now() + 61_000)).toBe(true)
    await expect.poll(async () => (await api.runtime.host.load(id)).state.value).toBe("stopped")
    expect((await api.runtime.host.load(id)).state.context.stop_reason).toBe(SILENT_STOP_REASON)
  })

  it("refuses bad uploads with their error code, storing nothing", async () => {
    const id = await newSession("user-a")
    const other = await newSession("user-b")
    const bytes = segments[0] as Uint8Array
    const tokenB = data(
      (await api.request("POST", "/capture/session/token", { body: { user_id: "user-b" } })).body,
    ).token as string
    const cases: Array<
      [Promise<{ status: number; body: Record<string, unknown> }>, number, string, string?]
    > = [
      [
        upload("cap-00000000000000000000000000", "display:1", 0, bytes),
        404,
        "session_not_found",
        "session_id",
      ],
      [upload(id, "display:2", 0, bytes), 400, "channel_not_found", "channel_id"],
      [upload(id, "camera:1", 0, bytes), 400, "channel_not_found", "channel_id"],
      [upload(id, "display:1", 0, bytes, { token: "st-wrong" }), 401, "unauthorized", "x-access-token"],
      [upload(id, "display:1", 0, bytes, { token: tokenB }), 403, "forbidden", "x-access-token"],
      [
        upload(id, "display:1", 0, new Uint8Array(5 * 1024 * 1024 + 188).fill(0x47)),
        413,
        "payload_too_large",
        "body",
      ],
      [
        upload(id, "display:1", 0, new TextEncoder().encode("not media at all, just some text")),
        422,
        "unsupported_media",
        "body",
      ],
      [
        upload(id, "display:1", 0, bytes, { headers: { "x-segment-sha256": "0".repeat(64) } }),
        400,
        "checksum_mismatch",
        "x-segment-sha256",
      ],
      [
        upload(id, "display:1", 0, bytes, { headers: { "x-segment-duration-ms": "soon" } }),
        400,
        "invalid_field",
        "x-segment-duration-ms",
      ],
      [
        upload(id, "display:1", 0, bytes, { headers: { "content-type": "application/json" } }),
        415,
        "unsupported_media_type",
        "content-type",
      ],
      [upload(id, "display:1", -1, bytes), 400, "invalid_field", "index"],
    ]
    for (const [pending, status, code, field] of cases) {
      const response = await pending
      expect({ status: response.status, code: response.body.error_code, field: response.body.field }).toEqual(
        {
          status,
          code,
          field,
        },
      )
    }
    expect(await stored(id)).toBe(0)
    expect((await api.runtime.host.load(id)).state.value).toBe("starting")

    await api.request("POST", `/capture/session/${other}/stop`)
    expect(await upload(other, "display:1", 0, bytes)).toMatchObject({
      status: 409,
      body: { error_code: "invalid_transition", current_status: "stopped" },
    })
    expect(await stored(other)).toBe(0)
    // The same index with other bytes is a conflict, not an overwrite.
    expect((await upload(id, "display:1", 0, bytes)).status).toBe(200)
    expect(await upload(id, "display:1", 0, segments[1] as Uint8Array)).toMatchObject({
      status: 409,
      body: { error_code: "segment_conflict" },
    })
  })
})
