/**
 * OpenTelemetry traces of a real `capture serve`: with `OTEL_EXPORTER_OTLP_ENDPOINT` naming a
 * local OTLP/HTTP receiver (JSON), a session recorded and exported through it gives one trace that
 * follows it from an HTTP request through the append and, across NATS, to the projector, the
 * reactor, the muxer and the webhook delivery it caused; no span carries a credential. Unset, the
 * variables leave tracing off (the other suites run that way).
 */
import { execFileSync } from "node:child_process"
import { once } from "node:events"
import { mkdtemp, rm } from "node:fs/promises"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import type { SessionId } from "@capture/protocol"
import {
  festivalAvailable,
  LOOPBACK,
  type NatsServerHandle,
  speechRecording,
  startNatsServer,
} from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { tracingSettingsFromEnv } from "../src/serve/Tracing.js"
import { killIfRunning, runCli } from "./cli.js"
import {
  type CaptureServer,
  pollUntil,
  startCaptureServer,
  startWebhookReceiver,
  type WebhookReceiver,
} from "./endToEnd.js"
import { ffmpeg } from "./media.js"
import { uploadSegment } from "./transcription.js"

interface OtlpValue {
  readonly stringValue?: string
  readonly intValue?: number | string
}
interface OtlpSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly name: string
  readonly kind: number
  readonly attributes: ReadonlyArray<{ readonly key: string; readonly value: OtlpValue }>
}
interface OtlpTraces {
  readonly resourceSpans: ReadonlyArray<{
    readonly resource: { readonly attributes: ReadonlyArray<{ key: string; value: OtlpValue }> }
    readonly scopeSpans: ReadonlyArray<{ readonly spans: ReadonlyArray<OtlpSpan> }>
  }>
}

const SERVER_KIND = 2

/** An OTLP/HTTP receiver on 127.0.0.1: keeps every span posted to /v1/traces (JSON). */
const startOtlpReceiver = async () => {
  const spans: OtlpSpan[] = []
  const bodies: string[] = []
  const services = new Set<string>()
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      if (request.url !== "/v1/traces" || request.headers["content-type"] !== "application/json") {
        response.writeHead(415).end()
        return
      }
      const body = Buffer.concat(chunks).toString("utf8")
      bodies.push(body)
      const traces = JSON.parse(body) as OtlpTraces
      for (const resource of traces.resourceSpans) {
        const name = resource.resource.attributes.find((a) => a.key === "service.name")
        if (name?.value.stringValue !== undefined) services.add(name.value.stringValue)
        for (const scope of resource.scopeSpans) spans.push(...scope.spans)
      }
      response.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  })
  server.listen(0, LOOPBACK)
  await once(server, "listening")
  const { port } = server.address() as AddressInfo
  return {
    endpoint: `http://${LOOPBACK}:${port}`,
    spans,
    bodies,
    services,
    close: () => {
      server.closeAllConnections()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

describe("tracingSettingsFromEnv", () => {
  it("is off without an endpoint or when disabled, and reads the standard variables", () => {
    expect(tracingSettingsFromEnv({})).toBeUndefined()
    expect(
      tracingSettingsFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" }),
    ).toBeUndefined()
    expect(
      tracingSettingsFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_TRACES_EXPORTER: "none" }),
    ).toBeUndefined()
    expect(
      tracingSettingsFromEnv({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/",
        OTEL_EXPORTER_OTLP_HEADERS: "x-tenant=a%20b",
        OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=prod",
      }),
    ).toEqual({
      url: "http://collector:4318/v1/traces",
      protocol: "http/protobuf",
      headers: { "x-tenant": "a b" },
      serviceName: "capture",
      resourceAttributes: { "deployment.environment": "prod" },
      exportIntervalMs: 5_000,
    })
    expect(
      tracingSettingsFromEnv({
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://collector:4318/traces",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_SERVICE_NAME: "capture-eu",
      }),
    ).toMatchObject({ url: "http://collector:4318/traces", protocol: "http/json", serviceName: "capture-eu" })
    expect(() =>
      tracingSettingsFromEnv({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4317",
        OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
      }),
    ).toThrow(/grpc is not supported/)
    expect(() => tracingSettingsFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT must be an http\(s\) URL/,
    )
  })
})

describe("capture serve with OTEL_EXPORTER_OTLP_ENDPOINT", () => {
  let nats: NatsServerHandle
  let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>
  let server: CaptureServer
  let webhooks: WebhookReceiver
  let work: string

  beforeAll(async () => {
    nats = await startNatsServer()
    otlp = await startOtlpReceiver()
    server = await startCaptureServer(nats.url, {
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_SERVICE_NAME: "capture-trace-test",
        OTEL_BSP_SCHEDULE_DELAY: "200",
      },
    })
    webhooks = await startWebhookReceiver(server.webhookSecret)
    work = await mkdtemp(`${process.env.TMPDIR ?? "/tmp"}/capture-tracing-`)
  }, 90_000)
  afterAll(async () => {
    await killIfRunning(server?.process)
    await webhooks?.close()
    await otlp?.close()
    await nats?.stop()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it("follows a recorded session from HTTP through the append, across NATS, to the projector, reactor, muxer and webhook", async () => {
    const created = await server.data("POST", "/collection/default/capture/session", {
      end_user_id: "user-t",
      callback_url: webhooks.url,
    })
    const session = created.id as string
    const token = (await server.data("POST", "/capture/session/token", { user_id: "user-t" })).token as string
    const recorded = await runCli([
      "record",
      "--server",
      server.base,
      "--token",
      token,
      "--session",
      session,
      "--synthetic",
      "--duration",
      "3s",
      "--spool",
      `${work}/spool`,
    ])
    expect(recorded.code, `${recorded.stdout}${recorded.stderr}`).toBe(0)
    await pollUntil(
      "the exported webhook",
      async () => webhooks.received.map((w) => w.envelope.event),
      (events) => events.includes("capture_session.exported"),
      { timeoutMs: 60_000 },
    )

    // The trace the export is in: wait until its spans have all come in (a parent ends after its
    // children, so it may come in a later batch).
    const orphansOf = (spans: ReadonlyArray<OtlpSpan>) => {
      const ids = new Set(spans.map((span) => span.spanId))
      return spans.filter((span) => span.parentSpanId && !ids.has(span.parentSpanId))
    }
    const traceOfExport = () => {
      const muxer = otlp.spans.find(
        (span) =>
          span.name === "capture-muxer" &&
          otlp.spans.some((s) => s.parentSpanId === span.spanId && s.name === "command CompleteExport"),
      )
      return muxer === undefined ? [] : otlp.spans.filter((span) => span.traceId === muxer.traceId)
    }
    const trace = await pollUntil(
      "one trace from an HTTP request to the webhook delivery",
      async () => traceOfExport(),
      (spans) =>
        spans.some((s) => s.name === "webhook.deliver") &&
        spans.some((s) => s.kind === SERVER_KIND) &&
        spans.some((s) => s.name === "capture-projector") &&
        spans.some((s) => s.name === "capture-webhooks") &&
        orphansOf(spans).length === 0,
      { timeoutMs: 30_000 },
    )
    const names = new Set(trace.map((span) => span.name))
    for (const name of [
      "events.append",
      "capture-projector",
      "capture-reactor",
      "command RequestExport",
      "capture-muxer",
      "command CompleteExport",
      "capture-webhooks",
      "webhook.deliver",
    ]) {
      expect(names, name).toContain(name)
    }
    // One tree: a single root, the HTTP request (no client context came with it), and every other
    // span's parent in the trace.
    const roots = trace.filter((span) => span.parentSpanId === undefined || span.parentSpanId === "")
    expect(roots).toHaveLength(1)
    expect(roots[0]?.kind).toBe(SERVER_KIND)
    expect(orphansOf(trace).map((span) => span.name)).toEqual([])
    expect(trace.some((s) => s.attributes.some((a) => a.value.stringValue === session))).toBe(true)
    expect(otlp.services).toEqual(new Set(["capture-trace-test"]))

    // No credential in any span, not even one a client put in a query string.
    await fetch(`${server.base}/collection/default/capture/session/${session}?token=${token}`)
    await pollUntil(
      "the span of the request with a token in its query",
      async () => otlp.bodies.some((body) => body.includes("token=")),
      (found) => found,
      { timeoutMs: 10_000 },
    )
    const exported = otlp.bodies.join("\n")
    expect(exported).not.toContain(server.apiKey)
    expect(exported).not.toContain(token)
    expect(exported).not.toMatch(/\b(?:sk|st)-[A-Za-z0-9_-]{8,}/)
  }, 150_000)

  it.skipIf(!festivalAvailable())(
    "continues a segment upload's trace into the AI pipeline: its transcription and the transcript stored",
    async () => {
      const recording = await speechRecording(ffmpeg, ["Please send the report to the team before Friday."], {
        leadMs: 3_000,
      })
      const created = await server.data("POST", "/collection/default/capture/session", {
        end_user_id: "user-ai",
      })
      const sessionId = created.id as SessionId
      await server.data("POST", "/capture/session/start", {
        session_id: sessionId,
        channels: [{ channel_id: "mic:default" }],
      })
      const startMs = Date.now() - 30_000
      await uploadSegment(server, sessionId, recording, 0, startMs)
      const view = await pollUntil(
        "the mic's rtstream",
        () => server.data("GET", `/collection/default/capture/session/${sessionId}`),
        (session) => (session.rtstreams as ReadonlyArray<unknown>).length === 1,
      )
      const [mic] = view.rtstreams as ReadonlyArray<{ rtstream_id: string }>
      await server.data("POST", `/rtstream/${mic?.rtstream_id}/transcription`, { action: "start" })
      for (let index = 1; index < recording.segments.length; index++) {
        await uploadSegment(server, sessionId, recording, index, startMs)
      }
      const isTranscriptAppend = (span: OtlpSpan) =>
        span.name === "ai.append" &&
        span.attributes.some(
          (a) => a.key === "capture.ai_event_type" && a.value.stringValue === "TranscriptProduced",
        ) &&
        span.attributes.some((a) => a.value.stringValue === sessionId)
      const trace = await pollUntil(
        "the stored transcript's trace, back to a segment's upload",
        async () => {
          // Each segment's upload starts a trace: the one whose handling transcribed and stored a transcript.
          for (const append of otlp.spans.filter(isTranscriptAppend)) {
            const spans = otlp.spans.filter((span) => span.traceId === append.traceId)
            if (spans.some((s) => s.name === "ai.transcribe")) return spans
          }
          return []
        },
        (spans) =>
          spans.some((s) => s.kind === SERVER_KIND) &&
          spans.some((s) => s.name === "capture-ai") &&
          spans.some((s) => s.name === "capture-ai-alerts"),
        { timeoutMs: 120_000, intervalMs: 250 },
      )
      const byId = new Map(trace.map((span) => [span.spanId, span]))
      const append = trace.find(isTranscriptAppend)
      const consumer = byId.get(append?.parentSpanId ?? "")
      // The stored transcript reaches the AI stream's consumers (the alert dispatcher) in the same trace.
      const appendIds = new Set(trace.filter(isTranscriptAppend).map((s) => s.spanId))
      expect(trace.some((s) => s.name === "capture-ai-alerts" && appendIds.has(s.parentSpanId ?? ""))).toBe(
        true,
      )
      expect(consumer?.name).toBe("capture-ai")
      expect(trace.find((s) => s.name === "ai.transcribe")?.parentSpanId).toBe(consumer?.spanId)
      // The AI consumer continues the upload's: the PUT of a segment is the trace's root.
      const roots = trace.filter((span) => span.parentSpanId === undefined || span.parentSpanId === "")
      expect(roots.map((span) => span.kind)).toEqual([SERVER_KIND])
      expect(
        roots[0]?.attributes.some((a) =>
          a.value.stringValue?.includes(`/capture/session/${sessionId}/channels/`),
        ),
      ).toBe(true)
    },
    180_000,
  )

  it("traces the AI routes' commands: each in the request's trace, over what it stores on the AI stream", async () => {
    // One second of a tone, a mic's first segment: it makes the session active and its rtstreams.
    const tone = execFileSync(ffmpeg, [
      ...[
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000:duration=1",
      ],
      ...["-c:a", "aac", "-f", "mpegts", "pipe:1"],
    ])
    const created = await server.data("POST", "/collection/default/capture/session", {
      end_user_id: "user-ai-routes",
    })
    const sessionId = created.id as SessionId
    await server.data("POST", "/capture/session/start", {
      session_id: sessionId,
      channels: [{ channel_id: "display:1" }, { channel_id: "mic:default" }],
    })
    await uploadSegment(
      server,
      sessionId,
      { segments: [{ index: 0, bytes: new Uint8Array(tone), offsetMs: 0, durationMs: 1_000 }] },
      0,
      Date.now() - 10_000,
    )
    const view = await pollUntil(
      "the session's rtstreams",
      () => server.data("GET", `/collection/default/capture/session/${sessionId}`),
      (session) => (session.rtstreams as ReadonlyArray<unknown>).length === 2,
    )
    const rtstreams = view.rtstreams as ReadonlyArray<{ rtstream_id: string; name: string }>
    const mic = rtstreams.find((r) => r.name === "mic:default")?.rtstream_id as string
    const display = rtstreams.find((r) => r.name === "display:1")?.rtstream_id as string

    await server.data("POST", `/rtstream/${mic}/transcription`, { action: "start" })
    const event = await server.data("POST", "/rtstream/event", { event_prompt: "budget", label: "budget" })
    const index = await server.data("POST", `/rtstream/${display}/index/scene`, {})
    const indexPath = `/rtstream/${display}/index/${index.rtstream_index_id as string}`
    const alert = await server.data("POST", `${indexPath}/alert`, { event_id: event.event_id })
    await server.data("PATCH", `${indexPath}/alert/${alert.alert_id as string}/status`, { action: "disable" })
    await server.data(
      "PATCH",
      `/rtstream/${display}/index/scene/${index.rtstream_index_id as string}/status`,
      {
        action: "stop",
      },
    )
    // A refused command is traced too, with its code as the outcome.
    const refused = await server.call("PATCH", `${indexPath}/alert/alr-01NOSUCHALERT0000000000/status`, {
      action: "enable",
    })
    expect(refused.status).toBe(404)

    const attribute = (span: OtlpSpan, key: string) =>
      span.attributes.find((a) => a.key === key)?.value.stringValue
    const commandsOf = (name: string) =>
      otlp.spans.filter(
        (span) =>
          span.name === `ai ${name}` &&
          (name === "createEvent" || attribute(span, "capture.session_id") === sessionId),
      )
    // Each command: a child of its HTTP request's span; what it stored (`ai.append`) its child.
    const stored: Record<string, string> = {
      controlTranscription: "TranscriptionStarted",
      createSceneIndex: "SceneIndexCreated",
      createAlert: "AlertCreated",
      setAlertStatus: "AlertChanged",
      setSceneIndexStatus: "SceneIndexChanged",
    }
    await pollUntil(
      "every AI command's span, its request's and its append's",
      async () => [...Object.keys(stored), "createEvent"].map((name) => commandsOf(name).length),
      // setAlertStatus twice: the change and the refusal.
      (counts) => counts.every((count) => count > 0) && commandsOf("setAlertStatus").length === 2,
      { timeoutMs: 30_000 },
    )
    const byId = new Map(otlp.spans.map((span) => [span.spanId, span]))
    for (const [name, type] of Object.entries(stored)) {
      const [command] = commandsOf(name)
      expect(byId.get(command?.parentSpanId ?? "")?.kind, name).toBe(SERVER_KIND)
      expect(attribute(command as OtlpSpan, "capture.outcome"), name).toBe("done")
      const append = otlp.spans.find(
        (span) => span.name === "ai.append" && span.parentSpanId === command?.spanId,
      )
      expect(append && attribute(append, "capture.ai_event_type"), name).toBe(type)
      expect(append?.traceId, name).toBe(command?.traceId)
    }
    expect(byId.get(commandsOf("createEvent")[0]?.parentSpanId ?? "")?.kind).toBe(SERVER_KIND)
    expect(commandsOf("setAlertStatus").map((span) => attribute(span, "capture.outcome"))).toContain(
      "alert_not_found",
    )
  }, 90_000)

  it("continues the trace of a session's create into the timer that expires it, whichever process fires it", async () => {
    // Another gateway on the same NATS, whose sessions expire 2 s after their creation if never started.
    const gateway = await startCaptureServer(nats.url, {
      args: ["--role", "gateway", "--expire-timeout", "2s"],
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_SERVICE_NAME: "capture-trace-test",
        OTEL_BSP_SCHEDULE_DELAY: "200",
      },
    })
    try {
      const created = await gateway.data("POST", "/collection/default/capture/session", {
        end_user_id: "user-timer",
      })
      const session = created.id as string
      await pollUntil(
        "the session expired",
        () => server.data("GET", `/collection/default/capture/session/${session}`),
        (view) => view.status === "failed",
        { timeoutMs: 30_000 },
      )
      const createOf = () =>
        otlp.spans.find(
          (span) =>
            span.name === "command CreateSession" &&
            span.attributes.some((a) => a.value.stringValue === session),
        )
      const trace = await pollUntil(
        "the timer's spans in the create's trace",
        async () => {
          const create = createOf()
          return create === undefined ? [] : otlp.spans.filter((span) => span.traceId === create.traceId)
        },
        (spans) =>
          spans.some((s) => s.name === "timer expire") &&
          spans.some((s) => s.name === "command FireTimer") &&
          spans.filter((s) => s.name === "events.append").length >= 2,
        { timeoutMs: 30_000 },
      )
      const timer = trace.find((span) => span.name === "timer expire")
      const fire = trace.find((span) => span.name === "command FireTimer")
      expect(fire?.parentSpanId).toBe(timer?.spanId)
      // The timer hangs off the command that armed it.
      expect(timer?.parentSpanId).toBe(createOf()?.spanId)
    } finally {
      await killIfRunning(gateway.process)
    }
  }, 120_000)
})
