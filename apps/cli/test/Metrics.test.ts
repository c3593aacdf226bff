/**
 * `GET /metrics` of a real `capture serve`: the whole body parses as Prometheus text (every sample
 * line `name{labels} value`, every family typed), and the values move when a session is recorded
 * through it: requests by route, segments and bytes ingested, commands and appends with their
 * latency, durable consumers' backlog and lag, the export's duration, sessions by status.
 */
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killIfRunning, runCli } from "./cli.js"
import { type CaptureServer, pollUntil, startCaptureServer } from "./endToEnd.js"

interface Sample {
  readonly name: string
  readonly labels: Record<string, string>
  readonly value: number
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

/** Prometheus text: every sample, or a throw naming the first line that is not one. */
const parsePrometheus = (text: string): ReadonlyArray<Sample> => {
  const typed = new Set<string>()
  const samples: Sample[] = []
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("# HELP ")) continue
    const type = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line)
    if (type !== null) {
      typed.add(type[1] ?? "")
      continue
    }
    const match = SAMPLE.exec(line)
    if (match === null) throw new Error(`not a Prometheus sample line: ${line}`)
    const name = match[1] ?? ""
    const labels: Record<string, string> = {}
    for (const [, key, value] of (match[2] ?? "").matchAll(LABEL)) labels[key ?? ""] = value ?? ""
    const value = Number(match[3])
    if (Number.isNaN(value)) throw new Error(`not a number: ${line}`)
    const family = name.replace(/_(bucket|sum|count)$/, "")
    if (!typed.has(name) && !typed.has(family)) throw new Error(`sample before its # TYPE: ${line}`)
    samples.push({ name, labels, value })
  }
  return samples
}

const sampleSum = (
  samples: ReadonlyArray<Sample>,
  name: string,
  labels: Record<string, string> = {},
): number =>
  samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0)

let nats: NatsServerHandle
let server: CaptureServer
let work: string

beforeAll(async () => {
  nats = await startNatsServer()
  server = await startCaptureServer(nats.url)
  work = await mkdtemp(join(tmpdir(), "capture-metrics-"))
}, 90_000)
afterAll(async () => {
  await killIfRunning(server?.process)
  await nats?.stop()
  if (work !== undefined) await rm(work, { recursive: true, force: true })
})

const scrape = async (): Promise<ReadonlyArray<Sample>> => {
  const response = await fetch(`${server.base}/metrics`)
  expect(response.status).toBe(200)
  expect(response.headers.get("content-type")).toContain("text/plain")
  return parsePrometheus(await response.text())
}

describe("GET /metrics", () => {
  it("parses as Prometheus text, and its values move as a session is recorded and exported", async () => {
    const before = await scrape()
    const created = await server.data("POST", "/collection/default/capture/session", {
      end_user_id: "user-m",
    })
    const session = created.id as string
    const token = (await server.data("POST", "/capture/session/token", { user_id: "user-m" })).token as string
    const recorded = await runCli(
      [
        "record",
        "--server",
        server.base,
        "--token",
        token,
        "--session",
        session,
        "--synthetic",
        "--duration",
        "4s",
        "--spool",
        join(work, "spool"),
      ],
      {},
    )
    expect(recorded.code, `${recorded.stdout}${recorded.stderr}`).toBe(0)
    await pollUntil(
      "the session exported",
      () => server.data("GET", `/collection/default/capture/session/${session}`),
      (view) => view.export_status === "exported",
      { timeoutMs: 60_000 },
    )

    const after = await scrape()
    const sessionCreates = { method: "POST", route: "/collection/{cid}/capture/session", status: "200" }
    expect(sampleSum(after, "capture_http_requests_total", sessionCreates)).toBe(
      sampleSum(before, "capture_http_requests_total", sessionCreates) + 1,
    )
    // Routes are labelled by their shape, never by a session or channel.
    const routes = new Set(
      after.filter((s) => s.name === "capture_http_requests_total").map((s) => s.labels.route),
    )
    expect([...routes].some((route) => route?.includes(session))).toBe(false)
    expect(routes).toContain("/capture/session/{id}/channels/{channel}/segments/{n}")
    expect(
      sampleSum(after, "capture_http_request_duration_seconds_count", { method: "POST" }),
    ).toBeGreaterThan(0)

    expect(sampleSum(after, "capture_ingest_segments_total")).toBeGreaterThan(
      sampleSum(before, "capture_ingest_segments_total"),
    )
    expect(sampleSum(after, "capture_ingest_bytes_total")).toBeGreaterThan(10_000)
    // Every durable consumer shows its lag; the projector's, once caught up, is zero.
    const consumers = new Set(
      after.filter((s) => s.name === "capture_consumer_pending_messages").map((s) => s.labels.consumer),
    )
    expect(consumers).toContain("capture-projector")
    expect(consumers).toContain("capture-reactor")
    const projectorLag = await pollUntil(
      "the projector caught up",
      async () =>
        sampleSum(await scrape(), "capture_consumer_pending_messages", { consumer: "capture-projector" }),
      (lag) => lag === 0,
      { timeoutMs: 30_000 },
    )
    expect(projectorLag).toBe(0)
    expect(after.some((s) => s.name === "capture_websocket_connections")).toBe(true)

    // Commands by type and outcome, with their latency; appends with theirs; events by type.
    const stored = (type: string, samples: ReadonlyArray<Sample>) =>
      sampleSum(samples, "capture_commands_total", { type, outcome: "stored" })
    expect(stored("CreateSession", after)).toBe(stored("CreateSession", before) + 1)
    expect(stored("CompleteExport", after)).toBeGreaterThan(stored("CompleteExport", before))
    expect(
      sampleSum(after, "capture_command_duration_seconds_count", { type: "StartSession" }),
    ).toBeGreaterThan(sampleSum(before, "capture_command_duration_seconds_count", { type: "StartSession" }))
    expect(sampleSum(after, "capture_append_duration_seconds_count")).toBeGreaterThanOrEqual(
      sampleSum(before, "capture_append_duration_seconds_count") + 6,
    )
    expect(after.some((s) => s.name === "capture_append_conflicts_total")).toBe(true)
    expect(sampleSum(after, "capture_events_appended_total", { type: "ExportCompleted" })).toBeGreaterThan(
      sampleSum(before, "capture_events_appended_total", { type: "ExportCompleted" }),
    )
    // How far behind the consumers ran: the projector's, the reactor's and the muxer's.
    for (const consumer of ["capture-projector", "capture-reactor", "capture-muxer"]) {
      expect(sampleSum(after, "capture_consumer_lag_seconds_count", { consumer }), consumer).toBeGreaterThan(
        sampleSum(before, "capture_consumer_lag_seconds_count", { consumer }),
      )
    }
    // The export, timed by outcome.
    expect(
      sampleSum(after, "capture_export_duration_seconds_count", { outcome: "completed" }),
    ).toBeGreaterThan(sampleSum(before, "capture_export_duration_seconds_count", { outcome: "completed" }))
    expect(sampleSum(after, "capture_exports_total", { outcome: "completed" })).toBeGreaterThan(
      sampleSum(before, "capture_exports_total", { outcome: "completed" }),
    )
    // Sessions by live status: this one has ended, so none is left active.
    const statuses = new Set(after.filter((s) => s.name === "capture_sessions").map((s) => s.labels.status))
    expect([...statuses].sort()).toEqual(["active", "created", "starting", "stopping"])
  }, 120_000)
})
