/**
 * `capture serve`'s log lines: JSON when stdout is not a terminal (one object per line, with the
 * request id and the session a line is about), `[capture] …` with `--log-format pretty`, a clear
 * usage error for an unknown format, and never a credential in any line.
 */
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { getFreePort, type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { jsonLine, redact } from "../src/Log.js"
import { killIfRunning, runCli, type ServeProcess, startServe } from "./cli.js"

const API_KEY = "sk-log-test-key-0123456789abcdef"

interface LogLine {
  readonly time: string
  readonly level: string
  readonly message: string
  readonly role?: string
  readonly session_id?: string
  readonly request_id?: string
  readonly http_status?: number
  readonly http_path?: string
  readonly account_id?: string
}

// A credential as it is shaped (a masked one reads `st-[redacted]`, which this does not match).
const CREDENTIAL = /\b(?:sk|st)-[A-Za-z0-9_-]{8,}/

describe("jsonLine", () => {
  it("masks API keys, client tokens, webhook secrets and signed URL parameters", () => {
    const text = redact(
      "key sk-abcdefgh12345678 token st-abcdefgh12345678 secret whsec_c2VjcmV0c2VjcmV0 url /ws?token=st-x1&exp=1&sig=abc123",
    )
    expect(text).toBe(
      "key sk-[redacted] token st-[redacted] secret whsec_[redacted] url /ws?token=[redacted]&exp=1&sig=[redacted]",
    )
  })

  it("carries the session and account a message names, and warns on a failure", () => {
    const line = JSON.parse(
      jsonLine(
        "webhook delivery to acct-01M7Y44G9F6V45PKN15CDXNX67 for cap-01M7Y44GRPQT5KZCKJXVMFE827 failed",
        {},
        new Date(0),
      ),
    ) as LogLine & { account_id: string }
    expect(line).toMatchObject({
      time: "1970-01-01T00:00:00.000Z",
      level: "warn",
      session_id: "cap-01M7Y44GRPQT5KZCKJXVMFE827",
      account_id: "acct-01M7Y44G9F6V45PKN15CDXNX67",
    })
    expect(JSON.parse(jsonLine("ready", { request_id: "r-1" })).level).toBe("info")
  })
})

describe("capture serve logs (real process)", () => {
  let nats: NatsServerHandle
  let server: ServeProcess
  let base: string

  beforeAll(async () => {
    nats = await startNatsServer()
    const port = await getFreePort()
    base = `http://127.0.0.1:${port}`
    // An empty CAPTURE_LOG_FORMAT: the default for a pipe, JSON.
    server = startServe(["--port", String(port), "--role", "gateway"], {
      NATS_URL: nats.url,
      CAPTURE_API_KEY: API_KEY,
      CAPTURE_LOG_FORMAT: "",
    })
    await server.waitFor(/"message":"ready/, 60_000)
  }, 90_000)
  afterAll(async () => {
    await killIfRunning(server)
    await nats?.stop()
  })

  const call = async (method: string, path: string, body?: object, headers: Record<string, string> = {}) => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: {
        "x-access-token": API_KEY,
        ...headers,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    return { status: response.status, body: (await response.json()) as { data: Record<string, unknown> } }
  }

  it("writes JSON lines carrying the request id and the session id, and no credential", async () => {
    const created = await call(
      "POST",
      "/collection/default/capture/session",
      { end_user_id: "user-log" },
      { "x-request-id": "req-from-client-1" },
    )
    expect(created.status).toBe(200)
    const session = created.body.data.id as string
    const token = (await call("POST", "/capture/session/token", { user_id: "user-log" })).body.data
      .token as string
    expect(token).toMatch(/^st-/)
    expect((await call("GET", `/collection/default/capture/session/${session}`)).status).toBe(200)
    // A credential in a query string (refused: the token names no such socket) must not be logged.
    await fetch(`${base}/collection/default/capture/session/${session}?token=${token}`)
    expect((await call("POST", `/capture/session/${session}/stop`, {})).status).toBe(200)

    await server.waitFor(new RegExp(`"message":"POST /capture/session/${session}/stop 200"`), 10_000)
    const output = server.output()
    const lines = output
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as LogLine)
    expect(lines.every((line) => !Number.isNaN(Date.parse(line.time)) && line.role === "gateway")).toBe(true)
    const createdLine = lines.find((line) => line.message === "POST /collection/default/capture/session 200")
    expect(createdLine).toMatchObject({ level: "info", request_id: "req-from-client-1", http_status: 200 })
    expect(createdLine?.account_id).toMatch(/^acct-/)
    const aboutSession = lines.filter((line) => line.session_id === session)
    expect(aboutSession.length).toBeGreaterThanOrEqual(3)
    expect(aboutSession.every((line) => line.request_id?.startsWith("req-"))).toBe(true)
    expect(output).not.toContain(API_KEY)
    expect(output).not.toContain(token)
  })

  it("logs a recorded session's uploads with its session, account and request ids, and no credential", async () => {
    const created = await call("POST", "/collection/default/capture/session", { end_user_id: "user-rec" })
    const session = created.body.data.id as string
    const token = (await call("POST", "/capture/session/token", { user_id: "user-rec" })).body.data
      .token as string
    const spool = await mkdtemp(join(tmpdir(), "capture-log-"))
    try {
      const recorded = await runCli([
        "record",
        "--server",
        base,
        "--token",
        token,
        "--session",
        session,
        "--synthetic",
        "--duration",
        "2s",
        "--spool",
        join(spool, "spool"),
      ])
      expect(recorded.code, `${recorded.stdout}${recorded.stderr}`).toBe(0)
    } finally {
      await rm(spool, { recursive: true, force: true })
    }
    await server.waitFor(new RegExp(`"message":"POST /capture/session/${session}/stop 200"`), 10_000)
    const output = server.output()
    const lines = output
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as LogLine)
    const uploads = lines.filter((line) =>
      line.http_path?.startsWith(`/capture/session/${session}/channels/`),
    )
    expect(uploads.length).toBeGreaterThan(0)
    for (const line of uploads) {
      expect(line).toMatchObject({ session_id: session, http_status: 200 })
      expect(line.account_id).toMatch(/^acct-/)
      expect(line.request_id).toMatch(/^req-/)
    }
    expect(output).not.toMatch(CREDENTIAL)
    expect(output).not.toContain(token)
  }, 90_000)
})

describe("--log-format", () => {
  it("writes [capture] lines with pretty, and refuses an unknown format as a usage error", async () => {
    const nats = await startNatsServer()
    const port = await getFreePort()
    const pretty = startServe(["--port", String(port), "--role", "gateway", "--log-format", "pretty"], {
      NATS_URL: nats.url,
      CAPTURE_API_KEY: API_KEY,
      CAPTURE_LOG_FORMAT: "json",
    })
    try {
      await pretty.waitFor(/\[capture\] ready/, 60_000)
      expect(pretty.output()).not.toContain('"message"')
    } finally {
      await killIfRunning(pretty)
      await nats.stop()
    }
    const flag = await runCli(["serve", "--log-format", "xml"])
    expect(flag.code).toBe(2)
    const env = await runCli(["serve"], { CAPTURE_LOG_FORMAT: "xml" })
    expect(env.code).toBe(2)
    expect(env.stderr).toContain("CAPTURE_LOG_FORMAT must be one of json, pretty")
  }, 90_000)
})
