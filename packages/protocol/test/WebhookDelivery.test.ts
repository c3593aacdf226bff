import { Result } from "effect"
import { describe, expect, it } from "vitest"
import { decodeUnknown } from "../src/Decode.js"
import { Success } from "../src/HttpEnvelope.js"
import { WebhookDelivery, WebhookDeliveryList } from "../src/WebhookDelivery.js"
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

describe("WebhookDelivery", () => {
  it("round-trips a delivery and the deliveries list", async () => {
    await checkRoundTrip(WebhookDelivery, 50)
    await checkRoundTrip(WebhookDeliveryList, 20)
  })

  it("decodes the deliveries route's answer and names a bad attempt's field", () => {
    const decode = decodeUnknown(Success(WebhookDeliveryList))
    expect(
      Result.getOrThrow(decode({ success: true, data: { deliveries: [delivery] } })).data.deliveries,
    ).toEqual([delivery])
    const bad = decodeUnknown(WebhookDeliveryList)({
      deliveries: [{ ...delivery, attempts: [{ ...delivery.attempts[0], attempt: 0 }] }],
    })
    expect(Result.isFailure(bad) && bad.failure.field).toBe("deliveries[0].attempts[0].attempt")
  })
})
