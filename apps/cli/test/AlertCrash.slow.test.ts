/**
 * An alert exactly once across a SIGKILL of the AI worker: Festival speech through `serve --role
 * gateway` and `serve --role ai`, an audio index of one sentence per result, an alert on a matching
 * event with a callback URL on 127.0.0.1; the worker is SIGKILLed mid-stream and another started.
 * The receiver gets the signed alert once per matching result, none for the others.
 */
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { verifyWebhook } from "@capture/protocol"
import { festivalAvailable, type SpeechRecording, speechRecording } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type AiCluster, settle, startAiCluster } from "./aiCluster.js"
import { pollUntil } from "./endToEnd.js"
import { ffmpeg } from "./media.js"
import { startedSession, uploadSegment } from "./transcription.js"

const SENTENCES = [
  "The budget discussion is next week.",
  "Let's schedule the meeting for Thursday.",
  "We need to review the budget numbers.",
  "I will call you back in ten minutes.",
  "Please send the budget to the team before Friday.",
  "The project deadline moved to the end of the month.",
]

let cluster: AiCluster
let recording: SpeechRecording

interface Received {
  readonly id: string
  readonly verified: boolean
  readonly body: Record<string, unknown>
}
const received: Array<Received> = []
const receiver = createServer((request, response) => {
  const chunks: Array<Buffer> = []
  request.on("data", (chunk: Buffer) => chunks.push(chunk))
  request.on("end", () => {
    const raw = Buffer.concat(chunks).toString("utf8")
    const header = (name: string) => String(request.headers[name] ?? "")
    const id = header("webhook-id")
    received.push({
      id,
      verified: verifyWebhook(
        cluster.gateway.webhookSecret,
        { id, timestamp: header("webhook-timestamp"), signature: header("webhook-signature") },
        raw,
      ),
      body: JSON.parse(raw) as Record<string, unknown>,
    })
    response.writeHead(204).end()
  })
})

beforeAll(async () => {
  cluster = await startAiCluster("sk-alert-crash-provider")
  receiver.listen(0, "127.0.0.1")
  await new Promise((resolve) => receiver.once("listening", resolve))
  if (festivalAvailable()) {
    recording = await speechRecording(ffmpeg, SENTENCES, { leadMs: 6_500, gapMs: 1_000, segmentSeconds: 6 })
  }
}, 300_000)
afterAll(async () => {
  receiver.closeAllConnections()
  await new Promise((resolve) => receiver.close(resolve))
  await cluster?.stop()
})

describe.skipIf(!festivalAvailable())("an alert across a SIGKILL of the AI worker", () => {
  it("reaches the callback signed, exactly once per matching result", async () => {
    const { gateway } = cluster
    const workerA = await cluster.startRole("ai")
    const startMs = Date.now() - 120_000
    const { sessionId, rtstream: mic } = await startedSession(gateway, recording, {
      endUser: "user-alert",
      startMs,
    })
    // One result per sentence; the index starts transcription itself (auto_start_transcript).
    const index = await gateway.data("POST", `/rtstream/${mic}/index/scene`, {
      extraction_type: "transcript",
      extraction_config: { segmenter: "sentence", segmentation_value: 1 },
    })
    const indexId = index.rtstream_index_id as string
    const event = await gateway.data("POST", "/rtstream/event", {
      event_prompt: "Alert when the budget is discussed",
      label: "budget",
    })
    const callbackUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/alerts`
    const alert = await gateway.data("POST", `/rtstream/${mic}/index/${indexId}/alert`, {
      event_id: event.event_id,
      callback_url: callbackUrl,
    })
    for (let i = 1; i < recording.segments.length; i++) {
      await uploadSegment(gateway, sessionId, recording, i, startMs)
    }
    type Scene = { start: number; end: number; text: string }
    const scenes = async () =>
      (await gateway.data("GET", `/rtstream/${mic}/index/scene/${indexId}?page_size=1000`))
        .scene_index_records as ReadonlyArray<Scene>
    // Killed mid-stream: once a first result is stored and the next utterance is in flight.
    await cluster.killMidUtterance(workerA, async () => (await scenes()).length)

    // Every sentence transcribed and in a stored result (a segment's utterances batch together).
    const words = (texts: ReadonlyArray<{ text: string }>) =>
      texts
        .map((t) => t.text)
        .join(" ")
        .split(/\s+/)
    const settled = await pollUntil(
      "every sentence transcribed and in a result",
      async () => ({
        finals: (await gateway.data("GET", `/rtstream/${mic}/transcription?page_size=1000`))
          .segments as ReadonlyArray<{
          text: string
        }>,
        scenes: await scenes(),
      }),
      (now) => now.finals.length >= SENTENCES.length && words(now.scenes).length >= words(now.finals).length,
      { timeoutMs: 240_000, intervalMs: 500 },
    )
    const stored = settled.scenes
    const matching = stored.filter((scene) => /budget/i.test(scene.text))
    // What pocketsphinx heard decides which results match; the sentences make three.
    expect(matching.length).toBeGreaterThanOrEqual(2)
    await pollUntil(
      "the alerts' webhooks",
      async () => received.length,
      (n) => n >= matching.length,
      { timeoutMs: 60_000 },
    )
    await settle()
    expect(words(stored)).toEqual(words(settled.finals))
    expect(received).toHaveLength(matching.length)
    expect(new Set(received.map((r) => r.id)).size).toBe(received.length)
    for (const hook of received) {
      expect(hook.verified).toBe(true)
      expect(hook.body).toMatchObject({
        type: "alert",
        alert_id: alert.alert_id,
        event_id: event.event_id,
        label: "budget",
        rtstream_id: mic,
      })
    }
    // One per matching result: the webhooks' ranges are the matching scenes'.
    const ranges = (items: ReadonlyArray<{ start: number; end: number }>) =>
      items.map((r) => `${Math.round(r.start)}-${Math.round(r.end)}`).sort()
    expect(
      ranges(received.map((r) => ({ start: Number(r.body.start_time), end: Number(r.body.end_time) }))),
    ).toEqual(ranges(matching))
  }, 480_000)
})
