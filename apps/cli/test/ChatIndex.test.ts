/**
 * A visual index and an alert through `capture serve` configured with a chat model
 * (`CAPTURE_CHAT_*`) served on 127.0.0.1: VideoDB's SDK creates them, the model's descriptions
 * arrive as `visual_index` messages and scenes, and its verdicts fire the `alert` messages.
 */
import { ocrLines, TesseractReader, tesseractAvailable } from "@capture/ai"
import type { AlertMessage, SessionId, VisualIndexMessage } from "@capture/protocol"
import {
  type ChatProvider,
  type ChatProviderRequest,
  type NatsServerHandle,
  type ScreenRecording,
  screenRecording,
  startChatProvider,
  startNatsServer,
} from "@capture/testkit"
import { connect } from "videodb"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killIfRunning } from "./cli.js"
import { type CaptureServer, pollUntil, startCaptureServer } from "./endToEnd.js"
import { ffmpeg } from "./media.js"
import { openSocket, uploadSegment } from "./transcription.js"

const KEY = "sk-chat-serve-key"
const MODEL = "qwen2.5-vl"
/** What an index naming `pro` gets (`CAPTURE_CHAT_MODELS=pro=…`). */
const PRO_MODEL = "qwen2.5-vl-72b"
const tesseract = new TesseractReader()

/** Frames are read by tesseract and described; a verdict says yes when the result names the label. */
const answer = async (request: ChatProviderRequest): Promise<string> => {
  if (request.responseFormat === "json_object") {
    const label = /^Event: (.*)$/m.exec(request.text)?.[1]?.toLowerCase() ?? "?"
    const result = /"""\n([\s\S]*)\n"""/.exec(request.text)?.[1]?.toLowerCase() ?? ""
    const triggered = label.split(" ").every((word) => result.includes(word))
    return JSON.stringify({ triggered, confidence: triggered ? 0.8 : 0.05, explanation: `checked ${label}` })
  }
  const lines: Array<string> = []
  for (const image of request.images) lines.push(...ocrLines(await tesseract.read(image.bytes)))
  return `A window showing ${[...new Set(lines)].join(", ")}`
}

let nats: NatsServerHandle
let provider: ChatProvider
let server: CaptureServer
let recording: ScreenRecording

beforeAll(async () => {
  nats = await startNatsServer()
  provider = await startChatProvider({ apiKey: KEY, models: [MODEL, PRO_MODEL], answer })
  server = await startCaptureServer(nats.url, {
    env: {
      CAPTURE_CHAT_BASE_URL: provider.baseUrl,
      CAPTURE_CHAT_MODEL: MODEL,
      CAPTURE_CHAT_API_KEY: KEY,
      CAPTURE_CHAT_MODELS: `pro=${PRO_MODEL}`,
    },
  })
  recording = await screenRecording(ffmpeg, [
    { lines: [], seconds: 2 },
    { lines: ["Quarterly budget review"], seconds: 2 },
    { lines: ["Invoice overdue reminder"], seconds: 2 },
  ])
}, 120_000)
afterAll(async () => {
  await killIfRunning(server?.process)
  await provider?.close()
  await nats?.stop()
})

/** A session of one display holding the test recording's first segment, and its rtstream. */
const displaySession = async (endUserId: string) => {
  const startMs = Date.now() - 60_000
  const created = await server.data("POST", "/collection/default/capture/session", {
    end_user_id: endUserId,
  })
  const sessionId = created.id as SessionId
  await server.data("POST", "/capture/session/start", {
    session_id: sessionId,
    channels: [{ channel_id: "display:1" }],
  })
  await uploadSegment(server, sessionId, recording, 0, startMs, "display:1")
  const view = await pollUntil(
    "rtstreams",
    () => server.data("GET", `/collection/default/capture/session/${sessionId}`),
    (session) => (session.rtstreams as ReadonlyArray<unknown>).length === 1,
  )
  return {
    sessionId,
    startMs,
    display: (view.rtstreams as ReadonlyArray<{ rtstream_id: string }>)[0]?.rtstream_id ?? "",
  }
}

describe.skipIf(!tesseractAvailable())("a chat model through capture serve", () => {
  it("describes scenes with the model and fires alerts on its verdicts", async () => {
    expect(server.process.output()).toContain(`visual index chat (${MODEL}, tesseract when it fails)`)
    const socket = await openSocket(server)
    try {
      const { sessionId, startMs, display } = await displaySession("u-chat")
      const conn = connect({ apiKey: server.apiKey, baseUrl: server.base })
      const rtstream = await (await conn.getCollection()).getRTStream(display)
      const index = await rtstream.indexVisuals({
        batchConfig: { type: "time", value: 2, frameCount: 2 },
        prompt: "Which application is open?",
        socketId: socket.connectionId,
      })
      const eventId = await conn.createEvent("The quarterly budget is reviewed", "budget review")
      // An alert with no callback URL: the socket hears it.
      await server.data("POST", `/rtstream/${display}/index/${index?.rtstreamIndexId}/alert`, {
        event_id: eventId,
        ws_connection_id: socket.connectionId,
      })
      for (let i = 1; i < recording.segments.length; i++) {
        await uploadSegment(server, sessionId, recording, i, startMs, "display:1")
      }
      const visual = await pollUntil(
        "visual_index messages",
        async () =>
          socket.messages.filter(
            (m): m is VisualIndexMessage => "channel" in m && m.channel === "visual_index",
          ),
        (found) => found.length === 2,
        { timeoutMs: 90_000 },
      )
      expect(visual.map((m) => m.data.text)).toEqual([
        "A window showing Quarterly budget review",
        "A window showing Invoice overdue reminder",
      ])
      const alerts = await pollUntil(
        "alert messages",
        async () => socket.messages.filter((m): m is AlertMessage => "channel" in m && m.channel === "alert"),
        (found) => found.length >= 1,
        { timeoutMs: 30_000 },
      )
      // The invoice scene fires nothing (its alert message would follow its scene's at once).
      await new Promise((resolve) => setTimeout(resolve, 2_000))
      expect(socket.messages.filter((m) => "channel" in m && m.channel === "alert")).toHaveLength(1)
      expect(alerts[0]?.data).toMatchObject({
        label: "budget review",
        triggered: true,
        confidence: 0.8,
        explanation: "checked budget review",
        text: "A window showing Quarterly budget review",
      })
      const described = provider.requests.filter((r) => r.images.length > 0)
      expect(described.map((r) => r.text.startsWith("Which application is open?"))).toEqual([true, true])
      expect(provider.requests.every((r) => r.status === 200 && r.model === MODEL)).toBe(true)
      const scenes = (await index?.getScenes())?.scenes as ReadonlyArray<{ metadata: { engine: string } }>
      expect(scenes.map((scene) => scene.metadata.engine)).toEqual([`chat:${MODEL}`, `chat:${MODEL}`])
    } finally {
      socket.close()
    }
  }, 180_000)

  it("asks the model an index names, and refuses a name it does not offer", async () => {
    const { sessionId, startMs, display } = await displaySession("u-model")
    const refused = await server.call("POST", `/rtstream/${display}/index/scene`, {
      extraction_type: "time_based",
      model_name: "gpt-imaginary",
    })
    expect([refused.status, refused.body.error_code, refused.body.field]).toEqual([
      400,
      "unknown_model",
      "model_name",
    ])
    expect(refused.body.message).toMatch(new RegExp(`allowed: ${MODEL}, pro`))
    const conn = connect({ apiKey: server.apiKey, baseUrl: server.base })
    const rtstream = await (await conn.getCollection()).getRTStream(display)
    // A VideoDB tier not configured here is the default model; a configured one, its model.
    const ultra = await rtstream.indexVisuals({ modelName: "ultra", prompt: "Describe the screen" })
    await ultra?.stop()
    const pro = await rtstream.indexVisuals({
      batchConfig: { type: "time", value: 2, frameCount: 2 },
      prompt: "Which window is open?",
      modelName: "pro",
    })
    expect(await server.data("GET", `/rtstream/${display}/index/${pro?.rtstreamIndexId}`)).toMatchObject({
      model_name: "pro",
    })
    const asked = provider.requests.length
    for (let i = 1; i < recording.segments.length; i++) {
      await uploadSegment(server, sessionId, recording, i, startMs, "display:1")
    }
    const scenes = await pollUntil(
      "the pro index's scenes",
      async () => ((await pro?.getScenes())?.scenes ?? []) as ReadonlyArray<{ metadata: { engine: string } }>,
      (found) => found.length === 2,
      { timeoutMs: 90_000 },
    )
    expect(scenes.map((scene) => scene.metadata.engine)).toEqual([`chat:${PRO_MODEL}`, `chat:${PRO_MODEL}`])
    const described = provider.requests.slice(asked).filter((r) => r.images.length > 0)
    expect(described.map((r) => [r.model, r.status])).toEqual([
      [PRO_MODEL, 200],
      [PRO_MODEL, 200],
    ])
  }, 180_000)
})
