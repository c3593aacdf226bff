/**
 * The console's built files under `/static/…`: served with their type, and nothing outside the
 * assets folder reachable however the path is spelled (sent raw, as a hostile client would, not
 * normalised by a URL parser first).
 */
import { request } from "node:http"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startTestGateway, type TestGateway } from "./TestGateway.js"

let nats: NatsServerHandle
let api: TestGateway

beforeAll(async () => {
  nats = await startNatsServer()
  api = await startTestGateway(nats.url)
}, 60_000)
afterAll(async () => {
  await api?.stop()
  await nats?.stop()
})

/** GET of a raw request target; its status, content type and body. */
const getRaw = (target: string) =>
  new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
    const { hostname, port } = new URL(api.url)
    const req = request({ host: hostname, port, path: target, method: "GET" }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (chunk: Buffer) => chunks.push(chunk))
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          type: String(res.headers["content-type"] ?? ""),
          body: Buffer.concat(chunks).toString("utf8"),
        }),
      )
    })
    req.on("error", reject)
    req.end()
  })

describe("console files", () => {
  it("serves the player script with its type", async () => {
    const player = await getRaw("/static/player.js")
    expect(player.status).toBe(200)
    expect(player.type).toMatch(/^text\/javascript/)
  })

  it.each([
    "/static/../package.json",
    "/static/%2e%2e/package.json",
    "/static/chunks/../../index.js",
    "/static/chunks/..%2f..%2findex.js",
    "/static/%2fetc%2fpasswd",
    "/static//etc/passwd",
    "/static/.%2e/.%2e/.%2e/package.json",
  ])("answers %s with a JSON 404, never a file outside the assets", async (target) => {
    const answer = await getRaw(target)
    expect(answer.status).toBe(404)
    expect(JSON.parse(answer.body)).toMatchObject({ success: false, error_code: "not_found" })
  })
})
