import { AiStore } from "@capture/ai"
import {
  type AiEventOf,
  type AlertId,
  type ChannelId,
  type DetectionEventId,
  newRtstreamId,
  newSceneIndexId,
  newWebhookSecret,
  type SessionId,
} from "@capture/protocol"
import { getFreePort, type NatsServerHandle, startNatsServer, waitFor } from "@capture/testkit"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect, Result } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AlertDeliveryLog, alertDeliveryKey, openAlertDeliveries } from "../../src/alerts/AlertDeliveryLog.js"
import { AlertDispatcher } from "../../src/alerts/AlertDispatcher.js"
import { parseAllowList } from "../../src/webhooks/CallbackUrlPolicy.js"
import { startTestGateway, type TestGateway } from "../api/TestGateway.js"
import { Receiver } from "../webhooks/receiver.js"

let nats: NatsServerHandle
let api: TestGateway
let receiver: Receiver
const lines: Array<string> = []

beforeAll(async () => {
  nats = await startNatsServer()
  api = await startTestGateway(nats.url, { log: (line) => lines.push(line) })
  receiver = await Receiver.start()
}, 60_000)
afterAll(async () => {
  await receiver?.close()
  await api?.stop()
  await nats?.stop()
})

const data = (body: Record<string, unknown>) => body.data as Record<string, unknown>

const createSession = async (): Promise<SessionId> => {
  const created = await api.request("POST", "/collection/default/capture/session", {
    body: { end_user_id: "user-a" },
  })
  expect(created.status).toBe(200)
  return data(created.body).id as SessionId
}

/** A result of a visual index of the session's display that fired `alerts` (ids), all to the receiver. */
const sceneIndexed = async (
  sessionId: SessionId,
  alertIds: ReadonlyArray<string>,
  url: string = receiver.url,
  account?: string,
): Promise<AiEventOf<"SceneIndexed">> => {
  const account_id = account ?? (await api.runtime.host.load(sessionId)).state.context.account_id
  const routing = {
    account_id,
    end_user_id: "user-a",
    collection_id: "default",
    ws_connection_id: null,
    rtstream_name: "display:1",
  } as AiEventOf<"SceneIndexed">["data"]["routing"]
  const rtstreamId = newRtstreamId()
  return {
    type: "SceneIndexed",
    id: `${rtstreamId}/scene/0`,
    rtstream_id: rtstreamId,
    session_id: sessionId,
    channel_id: "display:1" as ChannelId,
    time: new Date().toISOString(),
    data: {
      index_id: newSceneIndexId(),
      kind: "visual",
      index_name: "screen",
      scene: 0,
      text: "Quarterly budget review",
      start: 1_763_000_000_000,
      end: 1_763_000_002_000,
      engine: "local",
      routing,
      alerts: alertIds.map((alert_id) => ({
        alert_id: alert_id as AlertId,
        event_id: "aev-01BUDGET000000000000000000" as DetectionEventId,
        label: "budget",
        confidence: 1,
        explanation: "budget",
        callback_url: url,
        routing,
      })),
    },
  }
}

const listed = async (sessionId: SessionId) => {
  const got = await api.request("GET", `/capture/session/${sessionId}/webhooks`)
  expect(got.status).toBe(200)
  return data(got.body) as {
    deliveries: ReadonlyArray<Record<string, unknown>>
    alert_deliveries: ReadonlyArray<Record<string, unknown>>
  }
}

describe("alert webhook deliveries", () => {
  it("are listed with the session's webhooks, and a record that does not decode is left alone and not sent", async () => {
    const ai = await AiStore.open(api.nc)
    const bucket = await openAlertDeliveries(api.nc, { prefix: "capture", replicas: 1 })
    const id = await createSession()
    const [sent, unreadable] = ["alr-01SENT00000000000000000000", "alr-01UNREADABLE0000000000000"]
    // A record this version cannot read (a newer one's, or corrupt): whether it was sent is unknown.
    const corrupt = JSON.stringify({ status: "pending", attempts: "xy", next_attempt_at: null })
    await bucket.put(alertDeliveryKey(id, unreadable, 0), corrupt)
    const event = await sceneIndexed(id, [sent, unreadable])
    await ai.append(event, 0)

    const { alert_deliveries } = await waitFor(
      () => listed(id),
      (list) => list.alert_deliveries.length === 1 && list.alert_deliveries[0]?.status === "delivered",
      { timeoutMs: 10_000 },
    )
    expect(alert_deliveries[0]).toEqual({
      alert_id: sent,
      event_id: "aev-01BUDGET000000000000000000",
      session_id: id,
      rtstream_id: event.rtstream_id,
      index_id: event.data.index_id,
      scene: 0,
      url: receiver.url,
      status: "delivered",
      attempts: [
        { attempt: 1, at: expect.any(String), status_code: 204, latency_ms: expect.any(Number), error: null },
      ],
      next_attempt_at: null,
    })
    await waitFor(
      async () => lines,
      (all) => all.some((line) => line.includes(unreadable) && line.includes("unreadable")),
    )
    const bodies = receiver.received.map((r) => JSON.parse(r.body) as { alert_id: string })
    expect(bodies.map((b) => b.alert_id)).toEqual([sent])
    expect(receiver.received[0]?.headers["webhook-id"]).toBe(`${sent}.0`)
    // Left as it was, for someone to look at.
    expect((await bucket.get(alertDeliveryKey(id, unreadable, 0)))?.string()).toBe(corrupt)
    // Another session's list holds none of them.
    expect((await listed(await createSession())).alert_deliveries).toEqual([])
  })
})

/** The `capture_parked_retries` gauge of a retry bucket, as `/metrics` would show it (undefined: no sample). */
const parkedGauge = async (bucket: string): Promise<number | undefined> => {
  const text = await Effect.runPromise(PrometheusMetrics.format())
  const line = text.split("\n").find((l) => l.startsWith(`capture_parked_retries{bucket="${bucket}"} `))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1))
}

describe("alert webhook retries", () => {
  it("park outside the shared consumer: dead endpoints never delay a live alert, and go out once they answer", async () => {
    const nc = await connect({ servers: nats.url })
    const secret = newWebhookSecret()
    const prefix = "alertretries"
    const ai = await AiStore.open(nc, { prefix })
    const live = await Receiver.start()
    const port = await getFreePort()
    const dispatcher = await AlertDispatcher.start(
      nc,
      ai,
      { prefix, replicas: 1 },
      {
        secretsFor: async () => [secret],
        policy: Result.getOrThrow(parseAllowList("127.0.0.1")),
        schedule: [3_000, 500],
        requestTimeoutMs: 2_000,
        maxAckPending: 2,
      },
    )
    try {
      const deadUrl = `http://127.0.0.1:${port}/alerts`
      const deadSessions = Array.from(
        { length: 6 },
        (_, i) => `cap-01DEAD${i}0000000000000000000` as SessionId,
      )
      for (const [i, id] of deadSessions.entries()) {
        await ai.append(await sceneIndexed(id, [`alr-01DEAD${i}000000000000000000`], deadUrl, "acct-x"), 0)
      }
      const log = await AlertDeliveryLog.open(nc, { prefix, replicas: 1 })
      await waitFor(
        () => Promise.all(deadSessions.map((id) => log.list(id))),
        (all) => all.every((deliveries) => deliveries[0]?.attempts.length === 1),
        { timeoutMs: 10_000 },
      )
      // Two slots, six dead results: were their retries held on the consumer, this would wait for them.
      const liveSession = "cap-01LIVE00000000000000000000" as SessionId
      const sent = Date.now()
      await ai.append(
        await sceneIndexed(liveSession, ["alr-01LIVE0000000000000000000"], live.url, "acct-x"),
        0,
      )
      await waitFor(
        () => log.list(liveSession),
        (deliveries) => deliveries[0]?.status === "delivered",
        { timeoutMs: 10_000 },
      )
      expect(Date.now() - sent).toBeLessThan(3_000)
      const info = await (await jetstreamManager(nc)).consumers.info(
        ai.topology.stream,
        `${prefix}-ai-alerts`,
      )
      expect(info.num_ack_pending).toBe(0)
      // Each dead result waits in the schedule, and the gauge counts it.
      await waitFor(
        () => parkedGauge(`${prefix}_alert_retries`),
        (parked) => parked === deadSessions.length,
      )
      // The dead endpoint comes up: every parked alert goes out from the schedule.
      const revived = await Receiver.start(() => 204, port)
      try {
        await waitFor(
          () => Promise.all(deadSessions.map((id) => log.list(id))),
          (all) => all.every((deliveries) => deliveries[0]?.status === "delivered"),
          { timeoutMs: 15_000 },
        )
        expect(revived.received).toHaveLength(deadSessions.length)
        await waitFor(
          () => parkedGauge(`${prefix}_alert_retries`),
          (parked) => parked === 0,
        )
      } finally {
        await revived.close()
      }
    } finally {
      await dispatcher.stop()
      await live.close()
      await nc.close()
    }
  })
})
