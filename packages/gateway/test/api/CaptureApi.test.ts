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

const data = (body: Record<string, unknown>) => body.data as Record<string, unknown>

const createSession = async (body: Record<string, unknown> = { end_user_id: "user-a" }, token?: string) => {
  const created = await api.request("POST", "/collection/default/capture/session", {
    body,
    ...(token === undefined ? {} : { token }),
  })
  expect(created.status).toBe(200)
  return data(created.body).id as string
}

const eventually = async <A>(f: () => Promise<A | undefined>, timeoutMs = 5_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await f()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error("condition not met in time")
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe("capture REST API", () => {
  it("creates, reads, lists, starts, stops and exports a session in the VideoDB wire format", async () => {
    const id = await createSession({ end_user_id: "user-a", metadata: { app: "test" } })
    const got = await api.request("GET", `/collection/default/capture/session/${id}`)
    expect(got.status).toBe(200)
    expect(got.body.success).toBe(true)
    for (const field of [
      "id",
      "session_id",
      "collection_id",
      "end_user_id",
      "client_id",
      "status",
      "callback_url",
      "metadata",
      "channels",
      "primary_video_channel_id",
      "rtstreams",
      "export_status",
      "exported_video_id",
      "exported_videos",
      "ws_connection_id",
      "created_at",
    ]) {
      expect(data(got.body)).toHaveProperty(field)
    }
    expect(data(got.body)).toMatchObject({ id, session_id: id, status: "created", metadata: { app: "test" } })

    const listed = await eventually(async () => {
      const page = await api.request(
        "GET",
        "/collection/default/capture/session?end_user_id=user-a&limit=100",
      )
      const sessions = data(page.body).sessions as Array<{ id: string }>
      return sessions.some((s) => s.id === id) ? page : undefined
    })
    expect(data(listed.body)).toHaveProperty("next_page")

    const started = await api.request("POST", "/capture/session/start", {
      body: {
        session_id: id,
        channels: [{ channel_id: "mic:default" }, { channel_id: "display:1", store: true }],
      },
    })
    expect(started).toMatchObject({
      status: 200,
      body: { success: true, data: { session_id: id, status: "starting" } },
    })

    const streaming = await api.request("GET", `/capture/session/${id}`)
    expect(data(streaming.body).channels).toEqual([
      expect.objectContaining({ channel_id: "mic:default", type: "audio" }),
      expect.objectContaining({ channel_id: "display:1", type: "video", is_primary: true }),
    ])

    const exportTooEarly = await api.request("POST", `/collection/default/capture/session/${id}/export`, {
      body: {},
    })
    expect(exportTooEarly).toMatchObject({
      status: 409,
      body: { success: false, error_code: "invalid_transition", current_status: "starting" },
    })

    const stopped = await api.request("POST", `/capture/session/${id}/stop`)
    expect(stopped.status).toBe(200)
    // Stopped while still starting: ends without an export (aborted).
    expect(data(stopped.body).status).toBe("stopped")
    const again = await api.request("POST", `/capture/session/${id}/stop`)
    expect(again.status).toBe(200)
  })

  it("answers GET /collection/default for every account and 404s an unknown collection", async () => {
    expect(await api.request("GET", "/collection/default")).toMatchObject({
      status: 200,
      body: { success: true, data: { id: "default" } },
    })
    expect(await api.request("GET", "/collection/c-nope")).toMatchObject({
      status: 404,
      body: { success: false, error_code: "collection_not_found", field: "collection_id" },
    })
  })

  it("refuses bad input with a stable error_code and the field at fault, writing nothing", async () => {
    const cases: Array<
      [string, string, { body?: unknown; raw?: string; token?: string | null }, number, string, string?]
    > = [
      ["POST", "/collection/default/capture/session", { body: {} }, 400, "missing_field", "end_user_id"],
      [
        "POST",
        "/collection/default/capture/session",
        { body: { end_user_id: 7 } },
        400,
        "invalid_field",
        "end_user_id",
      ],
      ["POST", "/collection/default/capture/session", { raw: "{nope" }, 400, "invalid_json", "body"],
      [
        "POST",
        "/collection/default/capture/session",
        { body: { end_user_id: "u" }, token: null },
        401,
        "unauthorized",
        "x-access-token",
      ],
      [
        "POST",
        "/collection/default/capture/session",
        { body: { end_user_id: "u" }, token: "sk-wrong" },
        401,
        "unauthorized",
        "x-access-token",
      ],
      [
        "POST",
        "/collection/default/capture/session",
        { body: { end_user_id: "u", callback_url: "ftp://x.example/" } },
        400,
        "invalid_callback_url",
        "callback_url",
      ],
      [
        "POST",
        "/collection/default/capture/session",
        { body: { end_user_id: "u", callback_url: "http://10.0.0.1/hook" } },
        400,
        "invalid_callback_url",
        "callback_url",
      ],
      [
        "POST",
        "/collection/default/capture/session",
        { raw: JSON.stringify({ end_user_id: "x".repeat(70_000) }) },
        413,
        "payload_too_large",
        "body",
      ],
      [
        "GET",
        "/collection/default/capture/session/cap-00000000000000000000000000",
        {},
        404,
        "session_not_found",
        "session_id",
      ],
      ["GET", "/collection/default/capture/session?limit=0", {}, 400, "invalid_field", "limit"],
      ["GET", "/collection/default/capture/session?status=sleeping", {}, 400, "invalid_field", "status"],
      [
        "POST",
        "/capture/session/start",
        { body: { session_id: "cap-00000000000000000000000000", channels: [{ channel_id: "mic:default" }] } },
        404,
        "session_not_found",
        "session_id",
      ],
      ["POST", "/capture/session/token", { body: { expires_in: 5 } }, 400, "invalid_field", "expires_in"],
    ]
    for (const [method, path, options, status, code, field] of cases) {
      const response = await api.request(method, path, options)
      expect({
        path,
        status: response.status,
        code: response.body.error_code,
        field: response.body.field,
      }).toEqual({
        path,
        status,
        code,
        field,
      })
      expect(response.body.success).toBe(false)
      expect(typeof response.body.message).toBe("string")
    }

    const id = await createSession()
    const start = (channels: unknown, extra: Record<string, unknown> = {}) =>
      api.request("POST", "/capture/session/start", { body: { session_id: id, channels, ...extra } })
    expect((await start([])).body).toMatchObject({ error_code: "no_channels" })
    expect((await start([{ channel_id: "mic:default" }, { channel_id: "mic:default" }])).body).toMatchObject({
      error_code: "duplicate_channel_id",
      field: "channels[1].channel_id",
    })
    expect(
      (
        await start([
          { channel_id: "display:1", is_primary: true },
          { channel_id: "display:2", is_primary: true },
        ])
      ).body,
    ).toMatchObject({ error_code: "multiple_primary_channels" })
    expect((await start([{ channel_id: "speaker:1" }])).body).toMatchObject({
      error_code: "invalid_field",
      field: "channels[0].channel_id",
    })
    // None of the refused starts changed the session.
    const after = await api.request("GET", `/collection/default/capture/session/${id}`)
    expect(data(after.body).status).toBe("created")
    expect((await api.runtime.host.load(id)).state.context.sequence).toBe(1)
  })

  it("keeps accounts apart: another account's key neither sees nor changes a session", async () => {
    const other = await api.gateway.accounts.createAccount("other")
    const { key } = await api.gateway.accounts.createApiKey(other.id)
    const id = await createSession()
    expect(
      await api.request("GET", `/collection/default/capture/session/${id}`, { token: key }),
    ).toMatchObject({
      status: 404,
      body: { error_code: "session_not_found" },
    })
    expect(await api.request("POST", `/capture/session/${id}/stop`, { token: key })).toMatchObject({
      status: 404,
    })
    expect(
      await api.request("POST", "/capture/session/start", {
        token: key,
        body: { session_id: id, channels: [{ channel_id: "mic:default" }] },
      }),
    ).toMatchObject({ status: 404 })
    const theirs = await api.request("GET", "/collection/default/capture/session?limit=100", { token: key })
    expect((data(theirs.body).sessions as Array<{ id: string }>).map((s) => s.id)).not.toContain(id)
    expect((await api.runtime.host.load(id)).state.value).toBe("created")
  })

  it("lets client tokens start and stop their end user's sessions, and nothing else", async () => {
    const mine = await createSession({ end_user_id: "user-a" })
    const theirs = await createSession({ end_user_id: "user-b" })
    const issued = await api.request("POST", "/capture/session/token", {
      body: { expires_in: 600, user_id: "user-a" },
    })
    expect(issued.status).toBe(200)
    const token = data(issued.body).token as string
    expect(token).toMatch(/^st-/)
    expect(data(issued.body).expires_in).toBe(600)

    const start = (session_id: string) =>
      api.request("POST", "/capture/session/start", {
        token,
        body: { session_id, channels: [{ channel_id: "display:1" }] },
      })
    expect((await start(theirs)).body).toMatchObject({ error_code: "forbidden" })
    expect((await start(mine)).status).toBe(200)
    expect((await api.request("POST", `/capture/session/${mine}/stop`, { token })).status).toBe(200)
    for (const [method, path] of [
      ["POST", "/collection/default/capture/session"],
      ["GET", `/collection/default/capture/session/${mine}`],
      ["GET", "/collection/default/capture/session"],
      ["POST", "/capture/session/token"],
    ] as const) {
      const response = await api.request(method, path, {
        token,
        ...(method === "POST" ? { body: { end_user_id: "x" } } : {}),
      })
      expect({ path, status: response.status, code: response.body.error_code }).toEqual({
        path,
        status: 403,
        code: "forbidden",
      })
    }

    const short = await api.gateway.accounts.createClientToken(
      (await api.gateway.accounts.firstAccount()).account.id,
      {
        expiresInSeconds: 1,
      },
    )
    await new Promise((resolve) => setTimeout(resolve, 1_100))
    expect(
      (await api.request("POST", `/capture/session/${mine}/stop`, { token: short.token })).body,
    ).toMatchObject({
      error_code: "token_expired",
    })
    await api.gateway.accounts.revokeClientToken(token)
    expect(await api.request("POST", `/capture/session/${mine}/stop`, { token })).toMatchObject({
      status: 401,
      body: { error_code: "unauthorized" },
    })
  })

  it("fails a session at its recorder's request, once, and refuses everyone else and ended sessions", async () => {
    const id = await createSession({ end_user_id: "user-a" })
    const tokenOf = async (user: string) =>
      data((await api.request("POST", "/capture/session/token", { body: { user_id: user } })).body)
        .token as string
    const mine = await tokenOf("user-a")
    await api.request("POST", "/capture/session/start", {
      token: mine,
      body: { session_id: id, channels: [{ channel_id: "display:1" }] },
    })
    const reason = { code: "capture_failed", message: "display:1: ffmpeg could not start (exit code 1)" }
    const fail = (session: string, body: unknown, token?: string | null) =>
      api.request("POST", `/capture/session/${session}/fail`, {
        body,
        ...(token === undefined ? {} : { token }),
      })

    const other = await api.gateway.accounts.createAccount("fail-other")
    const { key: otherKey } = await api.gateway.accounts.createApiKey(other.id)
    const refusals: Array<[string, unknown, string | null | undefined, number, string, string | undefined]> =
      [
        [id, { error: reason }, null, 401, "unauthorized", "x-access-token"],
        [id, { error: reason }, await tokenOf("user-b"), 403, "forbidden", "x-access-token"],
        [id, { error: reason }, otherKey, 404, "session_not_found", "session_id"],
        ["cap-00000000000000000000000000", { error: reason }, mine, 404, "session_not_found", "session_id"],
        [id, {}, mine, 400, "missing_field", "error"],
        [id, { error: { message: "no code" } }, mine, 400, "missing_field", "error.code"],
        [id, { error: { code: "Not A Code", message: "x" } }, mine, 400, "invalid_field", "error.code"],
        [id, { error: { code: "capture_failed", message: "" } }, mine, 400, "invalid_field", "error.message"],
      ]
    for (const [session, body, token, status, error_code, field] of refusals) {
      const response = await fail(session, body, token)
      expect({
        status: response.status,
        error_code: response.body.error_code,
        field: response.body.field,
      }).toEqual({ status, error_code, field })
    }
    expect((await api.runtime.host.load(id)).state.value).toBe("starting")

    const failed = await fail(id, { error: reason }, mine)
    expect(failed).toMatchObject({
      status: 200,
      body: { success: true, data: { status: "failed", error: reason } },
    })
    // Idempotent: a repeat (another reason, too) answers the failed session and changes nothing.
    const again = await fail(id, { error: { code: "capture_failed", message: "later" } }, mine)
    expect(again).toMatchObject({ status: 200, body: { data: { status: "failed", error: reason } } })
    const history = []
    for await (const stored of api.runtime.events.read(id)) history.push(stored.event.type)
    expect(history.filter((type) => type === "SessionFailed")).toHaveLength(1)

    // The account's key may fail any of its sessions; a session that ended keeps its outcome.
    const byKey = await createSession({ end_user_id: "user-c" })
    expect(await fail(byKey, { error: reason })).toMatchObject({
      status: 200,
      body: { data: { status: "failed" } },
    })
    const ended = await createSession({ end_user_id: "user-a" })
    expect((await api.request("POST", `/capture/session/${ended}/stop`, { token: mine })).status).toBe(200)
    expect(await fail(ended, { error: reason }, mine)).toMatchObject({
      status: 409,
      body: { success: false, error_code: "session_ended", current_status: "stopped" },
    })
    expect((await api.runtime.host.load(ended)).state.value).toBe("stopped")
  })

  it("never lets a client token set callback_url: the account's signed webhooks stay where the key put them", async () => {
    const id = await createSession({ end_user_id: "user-a", callback_url: "http://127.0.0.1:9/account-hook" })
    const issued = await api.request("POST", "/capture/session/token", { body: { user_id: "user-a" } })
    const token = data(issued.body).token as string
    const start = (extra: Record<string, unknown>) =>
      api.request("POST", "/capture/session/start", {
        token,
        body: { session_id: id, channels: [{ channel_id: "display:1" }], ...extra },
      })
    const redirected = await start({ callback_url: "http://127.0.0.1:9/attacker" })
    expect(redirected).toMatchObject({
      status: 403,
      body: { success: false, error_code: "forbidden_field", field: "callback_url" },
    })
    const loaded = await api.runtime.host.load(id)
    expect(loaded.state.value).toBe("created")
    expect(loaded.state.context.callback_url).toBe("http://127.0.0.1:9/account-hook")
    // What the recorder itself sends (no callback_url, or an explicit null) still starts the session.
    expect((await start({ callback_url: null })).status).toBe(200)
    expect((await api.runtime.host.load(id)).state.context.callback_url).toBe(
      "http://127.0.0.1:9/account-hook",
    )
  })

  it("shows the automatic export from the stop, and records a request for another display once", async () => {
    const id = await createSession()
    const host = api.runtime.host
    await api.request("POST", "/capture/session/start", {
      body: {
        session_id: id,
        channels: [{ channel_id: "mic:default" }, { channel_id: "display:1" }, { channel_id: "display:2" }],
      },
    })
    // Media arrival and finalization are the ingest's and muxer's business; drive them directly here.
    const { newCommandId } = await import("@capture/protocol")
    for (const command of [
      { type: "ReportMediaReceived", channel_id: "display:1" },
      { type: "StopSession" },
      { type: "FinishStopping" },
    ] as const) {
      await host.execute({ ...command, command_id: newCommandId(), session_id: id } as never)
    }
    // The stop started the primary display's export: the session shows it running from then on.
    const session = await eventually(async () => {
      const got = await api.request("GET", `/collection/default/capture/session/${id}`)
      return data(got.body).status === "stopped" ? got : undefined
    })
    expect(data(session.body)).toMatchObject({
      status: "stopped",
      export_status: "exporting",
      exported_video_id: null,
      exports: [{ video_channel_id: "display:1", export_status: "exporting" }],
    })
    const rtstreams = data(session.body).rtstreams as Array<Record<string, unknown>>
    expect(rtstreams.map((r) => r.exported_asset_id)).toEqual([null, null, null])
    // The session has ended its capture: every rtstream reads as VideoDB's SDK expects.
    for (const rtstream of rtstreams) {
      expect(rtstream).toMatchObject({ collection_id: "default", status: "stopped" })
      expect(rtstream.created_at).toEqual(expect.any(String))
    }
    const primary = await api.request("POST", `/collection/default/capture/session/${id}/export`, {
      body: {},
    })
    expect(primary).toMatchObject({
      status: 200,
      body: {
        data: { session_id: id, video_channel_id: "display:1", export_status: "exporting", video_id: null },
      },
    })
    const other = { video_channel_id: "display:2" }
    const first = await api.request("POST", `/collection/default/capture/session/${id}/export`, {
      body: other,
    })
    expect(data(first.body)).toMatchObject({ video_channel_id: "display:2", export_status: "exporting" })
    const second = await api.request("POST", `/collection/default/capture/session/${id}/export`, {
      body: other,
    })
    expect(data(second.body).export_status).toBe("exporting")
    // The automatic export's one request (the session reactor's) and display:2's, once each.
    const requests = async () => {
      const history = []
      for await (const stored of api.runtime.events.read(id)) history.push(stored.event)
      return history
        .filter((e) => e.type === "ExportRequested")
        .map((e) => [e.data.video_channel_id, e.data.automatic === true])
        .sort()
    }
    await expect.poll(requests).toEqual([
      ["display:1", true],
      ["display:2", false],
    ])
  })

  it("serves the OpenAPI document built from the protocol schemas, and a docs page", async () => {
    const openapi = (await (await fetch(`${api.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>
      components: { securitySchemes: Record<string, unknown> }
    }
    expect(Object.keys(openapi.paths)).toEqual(
      expect.arrayContaining([
        "/collection/{collection_id}",
        "/collection/{collection_id}/capture/session",
        "/collection/{collection_id}/capture/session/{session_id}",
        "/collection/{collection_id}/capture/session/{session_id}/export",
        "/capture/session/token",
        "/capture/session/start",
        "/capture/session/{session_id}",
        "/capture/session/{session_id}/stop",
        "/capture/session/{session_id}/fail",
        "/collection/{collection_id}/websocket",
      ]),
    )
    expect(JSON.stringify(openapi.components.securitySchemes)).toContain("x-access-token")
    // The rtstream status is declared with the two values it takes.
    expect(JSON.stringify(openapi)).toMatch(/"enum":\["connected","stopped"\]/)
    const docs = await fetch(`${api.url}/docs`)
    expect(docs.status).toBe(200)
    expect(await docs.text()).toContain("<html")
  })
})
