import { createHmac, randomBytes } from "node:crypto"
import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import { LIFECYCLE_EVENT_NAMES, LifecycleEvent } from "../src/LifecycleEvent.js"
import {
  newWebhookSecret,
  signWebhook,
  toWebhookEnvelope,
  verifyWebhook,
  WEBHOOK_SIGNATURE_HEADER,
  WebhookEnvelope,
  WebhookSecret,
  webhookHeaders,
} from "../src/WebhookEnvelope.js"
import { checkRoundTrip } from "./roundTrip.js"

describe("WebhookEnvelope", () => {
  it("round-trips every lifecycle event", async () => {
    const seen = await checkRoundTrip(WebhookEnvelope)
    expect(new Set(seen.map((envelope) => envelope.event))).toEqual(new Set(LIFECYCLE_EVENT_NAMES))
  })

  it("wraps a lifecycle event as version 2, keeping its id", () => {
    const event = Schema.decodeUnknownSync(LifecycleEvent)({
      id: "evt-1",
      event: "capture_session.failed",
      capture_session_id: "cap-1",
      end_user_id: "u",
      status: "failed",
      timestamp: "2026-01-20T12:34:56.000Z",
      data: { error: { code: "start_timeout", message: "no media" } },
    })
    const envelope = toWebhookEnvelope(event)
    expect(Schema.encodeSync(WebhookEnvelope)(envelope)).toMatchObject({ version: "2", id: "evt-1" })
  })
})

describe("signWebhook / verifyWebhook", () => {
  const id = "evt-01JC0000000000000000000000"
  const timestamp = 1_768_912_496
  const body = '{"version":"2","event":"capture_session.active"}'

  it("matches the Standard Webhooks published vector", () => {
    const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    const signature = signWebhook(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}')
    expect(signature).toBe("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
  })

  it("is HMAC-SHA256 of id.timestamp.body keyed by the decoded secret", () => {
    const key = randomBytes(24)
    const secret: WebhookSecret = `whsec_${key.toString("base64")}`
    const expected = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64")
    expect(signWebhook(secret, id, timestamp, body)).toBe(`v1,${expected}`)
  })

  it("verifies its own headers and refuses anything tampered with", () => {
    const secret = newWebhookSecret()
    const headers = webhookHeaders(secret, id, timestamp, body)
    const signed = { id, timestamp: String(timestamp), signature: headers[WEBHOOK_SIGNATURE_HEADER] ?? "" }
    const at = { nowSeconds: timestamp + 10 }
    expect(verifyWebhook(secret, signed, body, at)).toBe(true)
    expect(verifyWebhook(secret, { ...signed, signature: `v1,bogus ${signed.signature}` }, body, at)).toBe(
      true,
    )
    expect(verifyWebhook(secret, signed, body.replace("active", "failed"), at)).toBe(false)
    expect(verifyWebhook(secret, { ...signed, id: "evt-other" }, body, at)).toBe(false)
    expect(verifyWebhook(secret, { ...signed, timestamp: String(timestamp + 1) }, body, at)).toBe(false)
    expect(verifyWebhook(newWebhookSecret(), signed, body, at)).toBe(false)
    expect(verifyWebhook(secret, signed, body, { nowSeconds: timestamp + 301 })).toBe(false)
  })

  it("decodes a signing secret by its whsec_ prefix", () => {
    const secret = newWebhookSecret()
    expect(Schema.decodeUnknownSync(WebhookSecret)(secret)).toBe(secret)
    expect(() => Schema.decodeUnknownSync(WebhookSecret)("sk-not-a-secret")).toThrow()
  })
})
