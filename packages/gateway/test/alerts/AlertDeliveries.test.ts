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
import {
  AlertDeliveryLog,
  alertDeliveryKey,
  legacyAlertDeliveryKey,
  openAlertDeliveries,
} from "../../src/alerts/AlertDeliveryLog.js"
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

describe("alert deliveries recorded before their keys named the session (before 7749f0a)", () => {
  it("are read after an upgrade: a delivered one is not sent again, a pending one goes on, all are listed", async () => {
    const ai = await AiStore.open(api.nc)
    const bucket = await openAlertDeliveries(api.nc, { prefix: "capture", replicas: 1 })
    const id = await createSession()
    const [delivered, pending, unseen] = [
      "alr-01OLDDELIVERED00000000000",
      "alr-01OLDPENDING0000000000000",
      "alr-01OLDUNSEEN00000000000000",
    ]
    const at = "2026-12-01T10:00:00.000Z"
    // The records as that layout wrote them: key `<alert_id>.<scene>`, no session, rtstream, index or event.
    const legacy = (alertId: string, scene: number, status: string, statusCode: number) =>
      JSON.stringify({
        alert_id: alertId,
        scene,
        url: receiver.url,
        status,
        attempts: [
          {
            attempt: 1,
            at,
            status_code: statusCode,
            latency_ms: 12,
            error: statusCode === 204 ? null : `HTTP ${statusCode}`,
          },
        ],
        next_attempt_at: status === "pending" ? "2026-12-01T10:00:01.000Z" : null,
      })
    await bucket.put(legacyAlertDeliveryKey(delivered, 0), legacy(delivered, 0, "delivered", 204))
    await bucket.put(legacyAlertDeliveryKey(pending, 0), legacy(pending, 0, "pending", 503))
    await bucket.put(legacyAlertDeliveryKey(unseen, 3), legacy(unseen, 3, "failed", 500))
    const before = receiver.received.length
    // The result that fired two of them is delivered again (as after a crash, or a parked retry).
    const event = await sceneIndexed(id, [delivered, pending])
    await ai.append(event, 0)

    const continued = await waitFor(
      async () => (await bucket.get(alertDeliveryKey(id, pending, 0)))?.json<Record<string, unknown>>(),
      (record) => record?.status === "delivered",
      { timeoutMs: 10_000 },
    )
    // Its first attempt counts: this is the second.
    expect(
      ((continued?.attempts ?? []) as ReadonlyArray<{ attempt: number; status_code: number }>).map((a) => [
        a.attempt,
        a.status_code,
      ]),
    ).toEqual([
      [1, 503],
      [2, 204],
    ])
    expect(continued).toMatchObject({
      session_id: id,
      rtstream_id: event.rtstream_id,
      index_id: event.data.index_id,
    })
    const sent = receiver.received.slice(before)
    expect(sent.map((r) => (JSON.parse(r.body) as { alert_id: string }).alert_id)).toEqual([pending])
    expect(sent[0]?.headers["webhook-id"]).toBe(`${pending}.0`)
    // The delivered one was not sent again, and its record was left as it was.
    expect(await bucket.get(alertDeliveryKey(id, delivered, 0))).toBeNull()

    const owner = (alertId: string, rtstreamId = event.rtstream_id, indexId = event.data.index_id) => ({
      alert_id: alertId as AlertId,
      event_id: "aev-01BUDGET000000000000000000" as DetectionEventId,
      session_id: id,
      rtstream_id: rtstreamId,
      index_id: indexId,
    })
    const otherIndex = newSceneIndexId()
    const log = await AlertDeliveryLog.open(api.nc, { prefix: "capture", replicas: 1 })
    const listedNow = await log.list(id, [
      owner(delivered),
      owner(pending),
      owner(unseen, event.rtstream_id, otherIndex),
    ])
    const rows = listedNow
      .map((d) => [d.alert_id, d.scene, d.status, d.attempts.length, d.session_id] as const)
      .sort((a, b) => a[0].localeCompare(b[0]))
    expect(rows).toEqual([
      [delivered, 0, "delivered", 1, id],
      [pending, 0, "delivered", 2, id],
      [unseen, 3, "failed", 1, id],
    ])
    // Without the session's alerts, only the records of the new layout.
    expect((await log.list(id)).map((d) => d.alert_id)).toEqual([pending])
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
