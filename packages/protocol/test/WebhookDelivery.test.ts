import { Result } from "effect"
import { describe, expect, it } from "vitest"
import { decodeUnknown } from "../src/Decode.js"
import { Success } from "../src/HttpEnvelope.js"
import { AlertDelivery, WebhookDelivery, WebhookDeliveryList } from "../src/WebhookDelivery.js"
import { checkRoundTrip } from "./roundTrip.js"

const delivery = {
  event_id: "evt-1",
  session_id: "cap-1",
  sequence: 2,
  event: "capture_session.active",
  url: "https://hooks.example.com/capture",
  status: "pending",
  attempts: [
    { attempt: 1, at: "2026-01-20T12:34:56.000Z", status_code: 503, latency_ms: 12, error: "HTTP 503" },
  ],
  next_attempt_at: "2026-01-20T12:35:01.000Z",
}

const alertDelivery = {
  alert_id: "alr-1",
  event_id: "aev-1",
  session_id: "cap-1",
  rtstream_id: "rts-1",
  index_id: "rsi-1",
  scene: 0,
  url: "https://hooks.example.com/alerts",
  status: "delivered",
  attempts: [{ attempt: 1, at: "2026-01-20T12:34:56.000Z", status_code: 204, latency_ms: 9, error: null }],
  next_attempt_at: null,
}

describe("WebhookDelivery", () => {
  it("round-trips a delivery and the deliveries list", async () => {
    await checkRoundTrip(WebhookDelivery, 50)
    await checkRoundTrip(AlertDelivery, 50)
    await checkRoundTrip(WebhookDeliveryList, 20)
  })

  it("decodes the deliveries route's answer and names a bad attempt's field", () => {
    const decode = decodeUnknown(Success(WebhookDeliveryList))
    expect(
      Result.getOrThrow(
        decode({ success: true, data: { deliveries: [delivery], alert_deliveries: [alertDelivery] } }),
      ).data,
    ).toEqual({ deliveries: [delivery], alert_deliveries: [alertDelivery] })
    const bad = decodeUnknown(WebhookDeliveryList)({
      deliveries: [{ ...delivery, attempts: [{ ...delivery.attempts[0], attempt: 0 }] }],
      alert_deliveries: [],
    })
    expect(Result.isFailure(bad) && bad.failure.field).toBe("deliveries[0].attempts[0].attempt")
    const badAlert = decodeUnknown(WebhookDeliveryList)({
      deliveries: [],
      alert_deliveries: [{ ...alertDelivery, scene: -1 }],
    })
    expect(Result.isFailure(badAlert) && badAlert.failure.field).toBe("alert_deliveries[0].scene")
  })
})
