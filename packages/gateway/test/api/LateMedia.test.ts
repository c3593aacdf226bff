import { createHash } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { SessionId } from "@capture/protocol"
import { SILENT_STOP_REASON } from "@capture/session-actor"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { encodeTestSegments, startTestGateway, type TestGateway } from "./TestGateway.js"

// The ingest side of the late-media window: after a silence stop, segments whose media starts
// before the stop are taken until the window closes; later media, unstored channels and a
// closed window are refused with stable codes.

let nats: NatsServerHandle
let api: TestGateway
let dir: string
let segment: Uint8Array

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "capture-late-media-"))
  segment = encodeTestSegments(dir, 1)[0] as Uint8Array
  nats = await startNatsServer()
  api = await startTestGateway(nats.url, { lateMediaGraceMs: 120_000 })
}, 60_000)
afterAll(async () => {
  await api?.stop()
  await nats?.stop()
  rmSync(dir, { recursive: true, force: true })
})

const upload = async (sessionId: string, channelId: string, index: number, startMs: number) => {
  const response = await fetch(
    `${api.url}/capture/session/${sessionId}/channels/${encodeURIComponent(channelId)}/segments/${index}`,
    {
      method: "PUT",
      headers: {
        "x-access-token": "sk-test-gateway-key",
        "content-type": "video/mp2t",
        "x-segment-start-ms": String(startMs),
        "x-segment-duration-ms": "1000",
        "x-segment-sha256": createHash("sha256").update(segment).digest("hex"),
      },
      body: segment,
    },
  )
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

describe("late media after an automatic stop", () => {
  it("takes media recorded before a silence stop until the window closes, and nothing else", async () => {
    const created = await api.request("POST", "/collection/default/capture/session", {
      body: { end_user_id: "user-a" },
    })
    const id = (created.body.data as Record<string, unknown>).id as SessionId
    const channels = [{ channel_id: "display:1" }, { channel_id: "mic:default", store: false }]
    expect(
      (await api.request("POST", "/capture/session/start", { body: { session_id: id, channels } })).status,
    ).toBe(200)
    const recordedAt = Date.now()
    expect((await upload(id, "display:1", 0, recordedAt)).status).toBe(200)
    const reactor = api.runtime.reactor
    if (reactor === undefined) throw new Error("the test gateway runs a session reactor")
    await expect.poll(async () => (await api.runtime.host.load(id)).state.value).toBe("active")
    expect(await reactor.checkSilence(id, Date.now() + 61_000)).toBe(true)
    await expect.poll(async () => (await api.runtime.host.load(id)).state.value).toBe("stopped")
    const { context } = (await api.runtime.host.load(id)).state
    expect(context.stop_reason).toBe(SILENT_STOP_REASON)
    const stopAt = Date.parse(context.media_before ?? "")
    const until = context.late_media_until ?? ""
    expect(Date.parse(until)).toBeGreaterThan(Date.now())

    // Recorded before the stop: taken (a retry is a duplicate, as always).
    expect(await upload(id, "display:1", 1, stopAt - 1)).toMatchObject({
      status: 200,
      body: { data: { index: 1, duplicate: false } },
    })
    expect((await upload(id, "display:1", 1, stopAt - 1)).body).toMatchObject({ data: { duplicate: true } })
    // Recorded at or after the stop: refused, saying so.
    expect(await upload(id, "display:1", 2, stopAt)).toMatchObject({
      status: 409,
      body: { error_code: "recorded_after_stop", field: "x-segment-start-ms", current_status: "stopped" },
    })
    // A channel kept only for live use takes nothing once stopped.
    expect(await upload(id, "mic:default", 0, stopAt - 1)).toMatchObject({
      status: 409,
      body: { error_code: "invalid_transition", current_status: "stopped" },
    })
    // The reactor left the export to the window's timer.
    expect((await api.runtime.host.load(id)).state.context.automatic_export_requested).toBe(false)
    expect((await api.gateway.services.media.list(id)).map((r) => r.index)).toEqual([0, 1])

    // The window closes (its timer, fired here rather than waited for): the export is asked for once.
    const fire = { type: "FireTimer", session_id: id, timer: "late_media", deadline: until } as const
    await api.runtime.host.execute({ ...fire, command_id: `timer:${id}:late_media:${until}` as never })
    const closed = (await api.runtime.host.load(id)).state
    expect(closed.context.automatic_export_requested).toBe(true)
    expect(closed.context.late_media_until).toBeNull()
    expect(await upload(id, "display:1", 2, stopAt - 1)).toMatchObject({
      status: 409,
      body: { error_code: "invalid_transition" },
    })
  })
})
