import { createServer, type IncomingHttpHeaders, type Server } from "node:http"
import { verifyWebhook, type WebhookDelivery, type WebhookSecret } from "@capture/protocol"
import { getFreePort, LOOPBACK, type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { killIfRunning, runCli, type ServeProcess, startServe } from "./cli.js"

let nats: NatsServerHandle
const serves: Array<ServeProcess> = []
let receiver: Server | undefined

beforeAll(async () => {
  nats = await startNatsServer()
})
afterEach(async () => {
  for (const serve of serves.splice(0)) await killIfRunning(serve)
  const open = receiver
  receiver = undefined
  open?.closeAllConnections()
  if (open !== undefined) await new Promise((resolve) => open.close(resolve))
})
afterAll(async () => {
  await nats?.stop()
})

const API_KEY = "sk-webhooks-test-key-0123456789"

/** Short retries, so a receiver that comes back is reached within a second. */
const env = () => ({
  NATS_URL: nats.url,
  CAPTURE_API_KEY: API_KEY,
  CAPTURE_WEBHOOK_ALLOW_HOSTS: "127.0.0.1",
  CAPTURE_WEBHOOK_SCHEDULE: ["200ms", "400ms", "800ms", ...Array<string>(17).fill("1s")].join(","),
  CAPTURE_WEBHOOK_ACK_WAIT_MS: "2000",
})

const serve = async (...args: ReadonlyArray<string>) => {
  const port = await getFreePort()
  const process = startServe(["--port", String(port), ...args], env())
  serves.push(process)
  await process.waitFor(/\[capture\] ready/)
  return { process, base: `http://127.0.0.1:${port}` }
}

const capture = (...args: ReadonlyArray<string>) => runCli([...args, "--nats", nats.url])

/** A POST of the capture API as the seeded key; resolves with the envelope's `data`. */
const post = async (base: string, path: string, body?: object): Promise<Record<string, unknown>> => {
  const response = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "x-access-token": API_KEY, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const envelope = (await response.json()) as { readonly data: Record<string, unknown> }
  expect(response.status, `${path}: ${JSON.stringify(envelope)}`).toBe(200)
  return envelope.data
}

interface Received {
  readonly headers: IncomingHttpHeaders
  readonly body: string
  readonly envelope: { readonly id: string; readonly event: string; readonly capture_session_id: string }
}

/** The webhook receiver, from the moment it comes up: records every POST and answers 204. */
const startReceiver = (port: number, received: Array<Received>): Promise<Server> =>
  new Promise((resolve, reject) => {
    const server = createServer((request, response) => {
      const chunks: Array<Buffer> = []
      request.on("data", (chunk: Buffer) => chunks.push(chunk))
      request.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8")
        received.push({ headers: request.headers, body, envelope: JSON.parse(body) })
        response.writeHead(204).end()
      })
    })
    server.once("error", reject)
    server.listen(port, LOOPBACK, () => resolve(server))
  })

const deliveriesOf = async (sessionId: string): Promise<ReadonlyArray<WebhookDelivery>> => {
  const result = await capture("webhooks", "list", "--session", sessionId, "--json")
  expect(result.code, result.stderr).toBe(0)
  const listed = JSON.parse(result.stdout)
  // The session fired no AI alert: the list GET …/webhooks answers with has none.
  expect(listed.alert_deliveries).toEqual([])
  return listed.deliveries
}

describe("capture webhooks", () => {
  it("delivers every lifecycle event, signed and in order, to a receiver that was down across a serve crash", async () => {
    const receiverPort = await getFreePort() // nothing listens there yet
    const callbackUrl = `http://${LOOPBACK}:${receiverPort}/hooks`
    const first = await serve()

    const printed = await capture("webhooks", "secret")
    expect(printed.code).toBe(0)
    const secret = printed.stdout.trim() as WebhookSecret
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/=]+$/)

    const session = await post(first.base, "/collection/default/capture/session", {
      end_user_id: "user-1",
      callback_url: callbackUrl,
    })
    const sessionId = String(session.session_id)
    await post(first.base, "/capture/session/start", {
      session_id: sessionId,
      channels: [{ channel_id: "display:1" }],
    })
    // Stopped while starting: nothing was captured, so it goes straight to stopped (aborted).
    expect(await post(first.base, `/capture/session/${sessionId}/stop`)).toMatchObject({ status: "stopped" })

    // The first serve fails a few times, then dies hard with the retries still owed.
    await expect
      .poll(async () => (await deliveriesOf(sessionId))[0]?.attempts.length ?? 0, {
        timeout: 10_000,
        interval: 200,
      })
      .toBeGreaterThanOrEqual(2)
    first.process.child.kill("SIGKILL")
    await first.process.exited
    await serve()

    const received: Array<Received> = []
    receiver = await startReceiver(receiverPort, received)
    await expect
      .poll(async () => (await deliveriesOf(sessionId)).map((d) => d.status), {
        timeout: 20_000,
        interval: 300,
      })
      .toEqual(["delivered", "delivered", "delivered"])

    const deliveries = await deliveriesOf(sessionId)
    expect(deliveries.map((d) => [d.sequence, d.event])).toEqual([
      [1, "capture_session.created"],
      [2, "capture_session.starting"],
      [3, "capture_session.stopped"],
    ])
    // At least once: a retry may repeat a POST, but never after its successor was sent.
    const inOrder = received.filter((r, i) => i === 0 || received[i - 1]?.envelope.id !== r.envelope.id)
    expect(inOrder.map((r) => r.envelope.event)).toEqual(deliveries.map((d) => d.event))
    expect(new Set(received.map((r) => r.envelope.id))).toEqual(new Set(deliveries.map((d) => d.event_id)))
    for (const r of received) {
      expect(r.envelope.capture_session_id).toBe(sessionId)
      expect(r.headers["content-type"]).toBe("application/json")
      const headers = {
        id: String(r.headers["webhook-id"]),
        timestamp: String(r.headers["webhook-timestamp"]),
        signature: String(r.headers["webhook-signature"]),
      }
      expect(headers.id).toBe(r.envelope.id)
      expect(verifyWebhook(secret, headers, r.body)).toBe(true)
    }

    // The created event's record kept the first serve's failed attempts and ends with the success.
    const created = deliveries[0]
    const failures = created?.attempts.filter((a) => a.error !== null) ?? []
    expect(failures.length).toBeGreaterThanOrEqual(2)
    expect(failures.every((a) => a.status_code === null && a.error?.startsWith("connection_error"))).toBe(
      true,
    )
    expect(created?.attempts.at(-1)).toMatchObject({ status_code: 204, error: null })
    expect(created?.attempts.map((a) => a.attempt)).toEqual(created?.attempts.map((_, i) => i + 1))
    expect(deliveries.every((d) => d.next_attempt_at === null)).toBe(true)

    const text = await capture("webhooks", "list", "--session", sessionId)
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/^#1 capture_session\.created {2}delivered /m)
    expect(text.stdout).toContain("connection_error: ECONNREFUSED")
    expect(text.stdout).toContain(`${sessionId}: 3 deliveries, 3 delivered, 0 pending, 0 failed;`)
  }, 120_000)

  it("splits the gateway in two: --role api answers, --role workers projects, fires timers and delivers", async () => {
    const received: Array<Received> = []
    const receiverPort = await getFreePort()
    receiver = await startReceiver(receiverPort, received)
    const callbackUrl = `http://${LOOPBACK}:${receiverPort}/hooks`
    // Left created, a session expires after 2 s: only a timer wheel fails it.
    const api = await serve("--role", "api", "--expire-timeout", "2s")
    const listed = async () => {
      const response = await fetch(`${api.base}/collection/default/capture/session?end_user_id=split`, {
        headers: { "x-access-token": API_KEY },
      })
      const envelope = (await response.json()) as {
        readonly data: { readonly sessions: ReadonlyArray<{ readonly id: string; readonly status: string }> }
      }
      return envelope.data.sessions.map((session) => [session.id, session.status] as const)
    }
    const stopped = String(
      (
        await post(api.base, "/collection/default/capture/session", {
          end_user_id: "split",
          callback_url: callbackUrl,
        })
      ).session_id,
    )
    await post(api.base, "/capture/session/start", {
      session_id: stopped,
      channels: [{ channel_id: "display:1" }],
    })
    expect(await post(api.base, `/capture/session/${stopped}/stop`)).toMatchObject({ status: "stopped" })
    const expiring = String(
      (await post(api.base, "/collection/default/capture/session", { end_user_id: "split" })).session_id,
    )
    // With no workers anywhere: no view is written, no webhook sent, no timer fired.
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    expect(await listed()).toEqual([])
    expect(received).toEqual([])

    await serve("--role", "workers")
    await expect
      .poll(async () => (await deliveriesOf(stopped)).map((d) => d.status), {
        timeout: 20_000,
        interval: 300,
      })
      .toEqual(["delivered", "delivered", "delivered"])
    expect(received.map((r) => r.envelope.event)).toEqual([
      "capture_session.created",
      "capture_session.starting",
      "capture_session.stopped",
    ])
    await expect
      .poll(async () => new Map(await listed()), { timeout: 20_000, interval: 300 })
      .toEqual(
        new Map([
          [stopped, "stopped"],
          [expiring, "failed"],
        ]),
      )
  }, 120_000)

  it("rotates the signing secret, and exits 2 for an unknown session", async () => {
    await serve()
    const before = (await capture("webhooks", "secret")).stdout.trim()
    const rotated = await capture("webhooks", "secret", "--rotate", "--grace", "1h")
    expect(rotated.code).toBe(0)
    const after = rotated.stdout.trim()
    expect(after).toMatch(/^whsec_/)
    expect(after).not.toBe(before)
    expect((await capture("webhooks", "secret")).stdout.trim()).toBe(after)
    const json = JSON.parse((await capture("webhooks", "secret", "--json")).stdout)
    expect(json.secrets.map((s: { secret: string }) => s.secret)).toEqual([after, before])
    expect(Date.parse(json.secrets[1].expires_at) - Date.now()).toBeGreaterThan(55 * 60_000)

    const unknown = await capture("webhooks", "list", "--session", "cap-NOSUCHSESSION")
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain("session cap-NOSUCHSESSION not found")
  }, 90_000)
})
