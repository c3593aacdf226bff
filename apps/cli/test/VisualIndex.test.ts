/**
 * Visual indexes through `capture serve` with the local engine (Tesseract): VideoDB's Node SDK
 * (`indexVisuals`, `listSceneIndexes`, `getSceneIndex`, `getScenes`, `updateSceneIndex`, `stop`,
 * `start`) on a display recorded from known screens, the `visual_index` and `scene_index`
 * messages, and every refusal with its code and field.
 */
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { tesseractAvailable } from "@capture/ai"
import { type AlertMessage, type SessionId, type VisualIndexMessage, verifyWebhook } from "@capture/protocol"
import {
  type NatsServerHandle,
  type ScreenRecording,
  screenRecording,
  startNatsServer,
} from "@capture/testkit"
import { connect } from "videodb"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killIfRunning } from "./cli.js"
import { type CaptureServer, pollUntil, startCaptureServer } from "./endToEnd.js"
import { ffmpeg } from "./media.js"
import { openSocket, uploadSegment } from "./transcription.js"

let nats: NatsServerHandle
let server: CaptureServer
let recording: ScreenRecording

beforeAll(async () => {
  nats = await startNatsServer()
  server = await startCaptureServer(nats.url)
  // A blank screen (segment 0 activates the session, before the index starts), then two screens.
  recording = await screenRecording(ffmpeg, [
    { lines: [], seconds: 2 },
    { lines: ["Quarterly budget review", "Slack general channel"], seconds: 4 },
    { lines: ["Invoice overdue reminder"], seconds: 4 },
  ])
}, 120_000)
afterAll(async () => {
  await killIfRunning(server?.process)
  await nats?.stop()
})

const words = (text: string) => text.toLowerCase().match(/[a-z]+/g) ?? []

/** A started session (display + mic) whose display's segment 0 made it active; its rtstream ids. */
const activeSession = async (startMs: number) => {
  const created = await server.data("POST", "/collection/default/capture/session", {
    end_user_id: "user-visual",
  })
  const sessionId = created.id as SessionId
  await server.data("POST", "/capture/session/start", {
    session_id: sessionId,
    channels: [{ channel_id: "display:1" }, { channel_id: "mic:default" }],
  })
  await uploadSegment(server, sessionId, recording, 0, startMs, "display:1")
  const view = await pollUntil(
    "rtstreams",
    () => server.data("GET", `/collection/default/capture/session/${sessionId}`),
    (session) => (session.rtstreams as ReadonlyArray<unknown>).length === 2,
  )
  const rtstreams = view.rtstreams as ReadonlyArray<{ rtstream_id: string; name: string }>
  const idOf = (channel: string) => rtstreams.find((r) => r.name === channel)?.rtstream_id ?? ""
  return { sessionId, display: idOf("display:1"), mic: idOf("mic:default") }
}

describe.skipIf(!tesseractAvailable())("visual indexes through capture serve (local engine)", () => {
  it("indexes a display with VideoDB's SDK: scenes with the words on screen, over the API and the WebSocket", async () => {
    const socket = await openSocket(server)
    try {
      const startMs = Date.now() - 60_000
      const { sessionId, display } = await activeSession(startMs)
      const conn = connect({ apiKey: server.apiKey, baseUrl: server.base })
      const coll = await conn.getCollection()
      const rtstream = await coll.getRTStream(display)
      const index = await rtstream.indexVisuals({
        batchConfig: { type: "time", value: 2, frameCount: 5 },
        prompt: "Describe what the user is looking at",
        name: "screen",
        socketId: socket.connectionId,
      })
      expect(index?.rtstreamIndexId).toMatch(/^rsi-/)
      expect(index).toMatchObject({
        extractionType: "time_based",
        extractionConfig: { time: 2, frameCount: 5 },
        name: "screen",
        status: "connected",
      })
      const indexId = index?.rtstreamIndexId ?? ""
      expect((await rtstream.listSceneIndexes()).map((i) => i.rtstreamIndexId)).toEqual([indexId])
      expect((await rtstream.getSceneIndex(indexId)).prompt).toBe("Describe what the user is looking at")

      for (let i = 1; i < recording.segments.length; i++) {
        await uploadSegment(server, sessionId, recording, i, startMs, "display:1")
      }
      const scenes = await pollUntil(
        "four scenes",
        async () => (await index?.getScenes())?.scenes ?? [],
        (found) => found.length === 4,
        { timeoutMs: 60_000 },
      )
      const budget = recording.screens[1]
      const invoice = recording.screens[2]
      if (budget === undefined || invoice === undefined) throw new Error("layout")
      for (const scene of scenes as ReadonlyArray<{ start: number; end: number; text: string }>) {
        const shown = scene.start * 1000 - startMs < budget.endMs ? budget : invoice
        expect(scene.start * 1000).toBeGreaterThanOrEqual(startMs + shown.startMs - 1)
        expect(scene.end * 1000).toBeLessThanOrEqual(startMs + shown.endMs + 1)
        for (const word of words(shown.lines.join(" "))) expect(words(scene.text)).toContain(word)
      }
      // Time ranges (Unix seconds, both ends given) and paging.
      const inInvoice = await index?.getScenes(
        (startMs + invoice.startMs) / 1000 + 0.5,
        (startMs + invoice.endMs) / 1000 - 0.5,
        1,
        1,
      )
      expect(inInvoice?.scenes).toHaveLength(1)
      expect(inInvoice?.nextPage).toBe(2)

      // The socket named by the index heard each scene as visual_index and scene_index.
      const visual = await pollUntil(
        "visual_index messages",
        async () =>
          socket.messages.filter(
            (m): m is VisualIndexMessage => "channel" in m && m.channel === "visual_index",
          ),
        (found) => found.length === 4,
      )
      expect(
        visual.every(
          (m) => m.rtstream_id === display && m.index_id === indexId && m.rtstream_name === "display:1",
        ),
      ).toBe(true)
      expect(words(visual[0]?.data.text ?? "")).toContain("budget")
      expect(socket.messages.filter((m) => "channel" in m && m.channel === "scene_index")).toHaveLength(4)
      expect(socket.undecodable).toEqual([])

      // Search finds the on-screen word in this rtstream and across the collection, with its time range.
      const found = (await rtstream.search({ query: "invoice overdue" })).getShots()
      expect(found.length).toBeGreaterThan(0)
      const best = found[0]
      expect(best?.text?.toLowerCase()).toContain("invoice")
      expect((best?.start ?? 0) * 1000).toBeGreaterThanOrEqual(startMs + invoice.startMs - 1)
      expect((best?.end ?? 0) * 1000).toBeLessThanOrEqual(startMs + invoice.endMs + 1)
      const inCollection = await coll.search(
        "quarterly budget",
        undefined,
        undefined,
        undefined,
        undefined,
        undefined,
        undefined,
        "rtstream",
      )
      const shots = "getShots" in inCollection ? inCollection.getShots() : []
      expect(shots.some((shot) => shot.rtstreamId === display && /budget/i.test(shot.text ?? ""))).toBe(true)
      // A client token of another end user finds nothing of this session.
      const token = (await server.data("POST", "/capture/session/token", { user_id: "someone-else" }))
        .token as string
      const stranger = await fetch(`${server.base}/rtstream/collection/default/search`, {
        method: "POST",
        headers: { "x-access-token": token, "content-type": "application/json" },
        body: JSON.stringify({ query: "quarterly budget" }),
      })
      expect(stranger.status).toBe(200)
      expect(((await stranger.json()) as { data: { results: Array<unknown> } }).data.results).toEqual([])
      expect((await server.call("POST", `/rtstream/${display}/search`, { query: " " })).status).toBe(400)

      // A new prompt, stop and start.
      await index?.updateSceneIndex("What is on screen?")
      expect(index?.prompt).toBe("What is on screen?")
      expect((await rtstream.getSceneIndex(indexId)).prompt).toBe("What is on screen?")
      await index?.stop()
      expect((await rtstream.getSceneIndex(indexId)).status).toBe("stopped")
      await index?.start()
      expect((await rtstream.getSceneIndex(indexId)).status).toBe("connected")
    } finally {
      socket.close()
    }
  }, 120_000)

  it("refuses bad input with a stable code and the field", async () => {
    const { display, mic } = await activeSession(Date.now())
    const create = (id: string, body: object) => server.call("POST", `/rtstream/${id}/index/scene`, body)
    const refusal = async (answer: Promise<{ status: number; body: Record<string, unknown> }>) => {
      const { status, body } = await answer
      return [status, body.error_code, body.field]
    }
    expect(await refusal(create(display, { extraction_type: "transcript" }))).toEqual([
      400,
      "rtstream_not_audio",
      "rtstream_id",
    ])
    expect(await refusal(create(mic, { extraction_type: "time_based" }))).toEqual([
      400,
      "rtstream_not_video",
      "rtstream_id",
    ])
    expect(await refusal(create(display, { extraction_config: { time: 0, frame_count: 5 } }))).toEqual([
      400,
      "invalid_field",
      "extraction_config.time",
    ])
    expect(await refusal(create(display, { extraction_config: { time: 2, frame_count: 100 } }))).toEqual([
      400,
      "invalid_field",
      "extraction_config.frame_count",
    ])
    expect(
      await refusal(create(mic, { extraction_config: { segmenter: "paragraph", segmentation_value: 3 } })),
    ).toEqual([400, "invalid_field", "extraction_config.segmenter"])
    expect(await refusal(create(display, { prompt: "" }))).toEqual([400, "invalid_field", "prompt"])
    expect(await refusal(create(display, { extraction_type: "frames" }))).toEqual([
      400,
      "invalid_field",
      "extraction_type",
    ])
    expect(await refusal(create(display, { ws_connection_id: "ws-not-ours" }))).toEqual([
      403,
      "forbidden",
      "ws_connection_id",
    ])
    expect(await refusal(create("rts-01NOSUCHRTSTREAM0000000000", {}))).toEqual([
      404,
      "rtstream_not_found",
      "rtstream_id",
    ])
    const unknown = "rsi-01NOSUCHINDEX00000000000"
    expect(await refusal(server.call("GET", `/rtstream/${display}/index/${unknown}`))).toEqual([
      404,
      "index_not_found",
      "index_id",
    ])
    expect(await refusal(server.call("GET", `/rtstream/${display}/index/scene/${unknown}`))).toEqual([
      404,
      "index_not_found",
      "index_id",
    ])
    expect(
      await refusal(
        server.call("PATCH", `/rtstream/${display}/index/scene/${unknown}/status`, { action: "start" }),
      ),
    ).toEqual([404, "index_not_found", "index_id"])
    expect((await refusal(server.call("GET", `/rtstream/${display}/index/bad..id`)))[0]).toBe(400)
    const created = await server.data("POST", `/rtstream/${display}/index/scene`, {})
    const indexId = created.rtstream_index_id as string
    expect(created).toMatchObject({
      extraction_type: "time_based",
      extraction_config: { time: 2, frame_count: 5 },
    })
    for (const size of ["0", "1001", "ten"]) {
      expect(
        await refusal(server.call("GET", `/rtstream/${display}/index/scene/${indexId}?page_size=${size}`)),
      ).toEqual([400, "invalid_field", "page_size"])
    }
    expect(
      await refusal(server.call("PATCH", `/rtstream/${display}/index/scene/${indexId}`, { prompt: "" })),
    ).toEqual([400, "invalid_field", "prompt"])
    expect(
      (
        await refusal(
          server.call("PATCH", `/rtstream/${display}/index/scene/${indexId}/status`, { action: "pause" }),
        )
      )[0],
    ).toBe(400)
    // Another index id on another rtstream is not found here.
    expect(await refusal(server.call("GET", `/rtstream/${mic}/index/${indexId}`))).toEqual([
      404,
      "index_not_found",
      "index_id",
    ])
  }, 60_000)

  it("fires an alert on a matching scene once: an alert message and a signed webhook", async () => {
    // A receiver on 127.0.0.1 that keeps every POST and checks its signature.
    const received: Array<{ id: string; verified: boolean; body: Record<string, unknown> }> = []
    const receiver = createServer((request, response) => {
      const chunks: Array<Buffer> = []
      request.on("data", (chunk: Buffer) => chunks.push(chunk))
      request.on("end", () => {
        const raw = Buffer.concat(chunks).toString("utf8")
        const header = (name: string) => String(request.headers[name] ?? "")
        const id = header("webhook-id")
        const verified = verifyWebhook(
          server.webhookSecret,
          { id, timestamp: header("webhook-timestamp"), signature: header("webhook-signature") },
          raw,
        )
        received.push({ id, verified, body: JSON.parse(raw) as Record<string, unknown> })
        response.writeHead(204).end()
      })
    })
    receiver.listen(0, "127.0.0.1")
    await new Promise((resolve) => receiver.once("listening", resolve))
    const callbackUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/alerts`
    const socket = await openSocket(server)
    try {
      const startMs = Date.now() - 60_000
      const { sessionId, display } = await activeSession(startMs)
      const conn = connect({ apiKey: server.apiKey, baseUrl: server.base })
      const eventId = await conn.createEvent("Alert when the quarterly budget is on screen", "budget review")
      expect(eventId).toMatch(/^aev-/)
      const events = (await server.data("GET", "/rtstream/event")).events as ReadonlyArray<{
        event_id: string
        label: string
      }>
      expect(events.find((e) => e.event_id === eventId)?.label).toBe("budget review")
      const coll = await conn.getCollection()
      const rtstream = await coll.getRTStream(display)
      const index = await rtstream.indexVisuals({ batchConfig: { type: "time", value: 2, frameCount: 5 } })
      const alertId = await index?.createAlert(eventId ?? "", callbackUrl, socket.connectionId)
      expect(alertId).toMatch(/^alr-/)
      // An unrelated event's alert never fires.
      const other = await conn.createEvent("Alert when a calendar invite appears", "calendar invite")
      await index?.createAlert(other ?? "", callbackUrl)
      expect((await index?.listAlerts())?.length).toBe(2)

      for (let i = 1; i < recording.segments.length; i++) {
        await uploadSegment(server, sessionId, recording, i, startMs, "display:1")
      }
      // The budget screen is scenes 0 and 1: two alerts, on the socket and as webhooks.
      const alerts = await pollUntil(
        "alert messages",
        async () => socket.messages.filter((m): m is AlertMessage => "channel" in m && m.channel === "alert"),
        (found) => found.length >= 2,
        { timeoutMs: 60_000 },
      )
      await pollUntil(
        "alert webhooks",
        async () => received.length,
        (n) => n >= 2,
        { timeoutMs: 30_000 },
      )
      // Nothing more comes (the invoice scenes match no alert; nothing is sent twice).
      await new Promise((resolve) => setTimeout(resolve, 3_000))
      expect(alerts).toHaveLength(2)
      for (const alert of alerts) {
        expect(alert).toMatchObject({ rtstream_id: display, index_id: index?.rtstreamIndexId })
        expect(alert.data).toMatchObject({
          label: "budget review",
          triggered: true,
          alert_id: alertId,
          event_id: eventId,
        })
        expect(alert.data.confidence).toBeGreaterThan(0)
        expect(alert.data.text.toLowerCase()).toContain("budget")
      }
      expect(received).toHaveLength(2)
      expect(new Set(received.map((r) => r.id)).size).toBe(2)
      for (const hook of received) {
        expect(hook.verified).toBe(true)
        expect(hook.body).toMatchObject({
          type: "alert",
          alert_id: alertId,
          event_id: eventId,
          label: "budget review",
        })
        expect(Number(hook.body.start_time) * 1000).toBeGreaterThanOrEqual(startMs)
      }
      // Disabled, it is listed so.
      await index?.disableAlert(alertId ?? "")
      const listed = (await index?.listAlerts()) as ReadonlyArray<{ alertId: string; status: string }>
      expect(listed.find((a) => a.alertId === alertId)?.status).toBe("disabled")
    } finally {
      socket.close()
      receiver.closeAllConnections()
      await new Promise((resolve) => receiver.close(resolve))
    }
  }, 120_000)

  it("refuses bad events and alerts with a stable code and the field", async () => {
    const { display } = await activeSession(Date.now())
    const refusal = async (answer: Promise<{ status: number; body: Record<string, unknown> }>) => {
      const { status, body } = await answer
      return [status, body.error_code, body.field]
    }
    expect(await refusal(server.call("POST", "/rtstream/event", { event_prompt: "", label: "x" }))).toEqual([
      400,
      "invalid_field",
      "event_prompt",
    ])
    expect((await refusal(server.call("POST", "/rtstream/event", { event_prompt: "x" })))[0]).toBe(400)
    const event = await server.data("POST", "/rtstream/event", { event_prompt: "budget", label: "budget" })
    const index = await server.data("POST", `/rtstream/${display}/index/scene`, {})
    const alertsOf = `/rtstream/${display}/index/${index.rtstream_index_id}/alert`
    expect(await refusal(server.call("POST", alertsOf, { event_id: "aev-01NOSUCHEVENT0000000000" }))).toEqual(
      [404, "event_not_found", "event_id"],
    )
    expect(
      await refusal(
        server.call("POST", alertsOf, { event_id: event.event_id, callback_url: "ftp://example.com/x" }),
      ),
    ).toEqual([400, "invalid_callback_url", "callback_url"])
    expect(
      await refusal(
        server.call("POST", `/rtstream/${display}/index/rsi-01NOSUCHINDEX00000000000/alert`, {
          event_id: event.event_id,
        }),
      ),
    ).toEqual([404, "index_not_found", "index_id"])
    expect(
      await refusal(
        server.call("PATCH", `${alertsOf}/alr-01NOSUCHALERT0000000000/status`, { action: "enable" }),
      ),
    ).toEqual([404, "alert_not_found", "alert_id"])
  }, 60_000)
})
