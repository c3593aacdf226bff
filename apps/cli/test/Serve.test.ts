import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { newSessionId } from "@capture/protocol"
import { type SessionRuntime, startSessionRuntime } from "@capture/session-actor"
import { getFreePort, getFreePorts, type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, afterEach, describe, expect, it } from "vitest"
import { ExitCode } from "../src/Exit.js"
import { isAlive, killIfRunning, type ServeProcess, startServe, waitUntilGone } from "./cli.js"
import { create, run, start } from "./commands.js"

const serves: Array<ServeProcess> = []
const dirs: Array<string> = []
afterEach(async () => {
  for (const serve of serves.splice(0)) await killIfRunning(serve)
})
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "capture-cli-"))
  dirs.push(dir)
  return dir
}

const serve = (
  args: ReadonlyArray<string>,
  env: Record<string, string> = {},
  options: { readonly ownGroup?: boolean } = {},
): ServeProcess => {
  const process = startServe(args, env, options)
  serves.push(process)
  return process
}

/** Starts serve with an embedded NATS on free ports; resolves once ready, with the nats-server pid. */
const serveEmbedded = async (dataDir = tempDir()) => {
  const [httpPort, natsPort] = await getFreePorts(2)
  const server = serve(["--port", String(httpPort), "--nats-port", String(natsPort), "--data-dir", dataDir])
  const [, pid] = await server.waitFor(/embedded nats-server pid (\d+)/)
  await server.waitFor(/\[capture\] ready/)
  return { server, base: `http://127.0.0.1:${httpPort}`, natsPid: Number(pid) }
}

const API_KEY = "sk-serve-test-key"
/** A real (tiny) MPEG-TS segment: the gateway checks the sync bytes and the PAT before storing. */
const SEGMENT = new Uint8Array(
  execFileSync(process.env.FFMPEG_PATH ?? "ffmpeg", [
    ...["-hide_banner", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=5", "-t", "0.4"],
    ...["-c:v", "libx264", "-f", "mpegts", "pipe:1"],
  ]),
)

/** Creates a session, starts it and uploads one tiny segment: it is active then. */
const recordOneSegment = async (base: string): Promise<void> => {
  const headers = { "x-access-token": API_KEY, "content-type": "application/json" }
  const created = await fetch(`${base}/collection/default/capture/session`, {
    method: "POST",
    headers,
    body: JSON.stringify({ end_user_id: "user-1" }),
  })
  const id = ((await created.json()) as { data: { id: string } }).data.id
  const started = await fetch(`${base}/capture/session/start`, {
    method: "POST",
    headers,
    body: JSON.stringify({ session_id: id, channels: [{ channel_id: "mic:default" }] }),
  })
  expect(started.status).toBe(200)
  const uploaded = await fetch(`${base}/capture/session/${id}/channels/mic%3Adefault/segments/0`, {
    method: "PUT",
    headers: {
      "x-access-token": API_KEY,
      "content-type": "video/mp2t",
      "x-segment-start-ms": String(Date.now()),
      "x-segment-duration-ms": "1000",
      "x-segment-sha256": createHash("sha256").update(SEGMENT).digest("hex"),
    },
    body: SEGMENT,
  })
  expect(uploaded.status).toBe(200)
}

/** The process group of `pid` (Linux: field 5 of /proc/<pid>/stat). */
const processGroupOf = (pid: number): number => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2])
}

describe("capture serve with an embedded NATS", () => {
  it("answers /healthz and /readyz, 404s unknown paths, and stops cleanly on SIGTERM", async () => {
    const { server, base, natsPid } = await serveEmbedded()
    expect(isAlive(natsPid)).toBe(true)

    const health = await fetch(`${base}/healthz`)
    expect(health.status).toBe(200)
    expect(await health.json()).toEqual({ status: "ok" })
    const ready = await fetch(`${base}/readyz`)
    expect(ready.status).toBe(200)
    expect(await ready.json()).toMatchObject({ status: "ready", stream: "CAPTURE_EVENTS" })
    const missing = await fetch(`${base}/nope`)
    expect(missing.status).toBe(404)
    expect(await missing.json()).toMatchObject({ success: false, error_code: "not_found" })

    const stoppedAt = Date.now()
    server.child.kill("SIGTERM")
    const exit = await server.exited
    expect(exit).toEqual({ code: 0, signal: null })
    expect(Date.now() - stoppedAt).toBeLessThan(10_000)
    expect(await waitUntilGone(natsPid, 2_000)).toBe(true)
    expect(server.output()).toMatch(/stopping workers[\s\S]*draining nats[\s\S]*embedded nats-server stopped/)
  })

  it("stops in seconds with exit 0 when its whole process group gets SIGTERM mid-work, NATS going last", async () => {
    const dataDir = tempDir()
    const [httpPort, natsPort] = await getFreePorts(2)
    const base = `http://127.0.0.1:${httpPort}`
    const server = serve(
      ["--port", String(httpPort), "--nats-port", String(natsPort), "--data-dir", dataDir],
      { CAPTURE_API_KEY: API_KEY, CAPTURE_SILENCE_TIMEOUT_MS: "500" },
      { ownGroup: true },
    )
    const natsPid = Number((await server.waitFor(/embedded nats-server pid (\d+)/))[1])
    await server.waitFor(/\[capture\] ready/)
    // A shell or a supervisor signals the whole group: the nats-server must not be in it.
    const pgid = server.child.pid ?? 0
    expect(processGroupOf(natsPid)).not.toBe(pgid)

    // Work in flight when the signal comes: active sessions, the silence watch stopping them, exports.
    await Promise.all([1, 2, 3, 4].map(() => recordOneSegment(base)))
    const stoppedAt = Date.now()
    process.kill(-pgid, "SIGTERM")
    const exit = await server.exited
    const took = Date.now() - stoppedAt
    expect({ exit, took: took < 8_000, log: server.output().slice(-3_000) }).toMatchObject({
      exit: { code: 0, signal: null },
      took: true,
    })
    expect(await waitUntilGone(natsPid, 2_000)).toBe(true)
    // Clients stopped while NATS was there; NATS was stopped by serve, last.
    expect(server.output()).toMatch(/stopping workers[\s\S]*draining nats[\s\S]*embedded nats-server stopped/)
    expect(server.output()).not.toMatch(/nats-server .*unexpectedly|nats disconnected/)
  }, 60_000)

  it("lets one serve own a data dir: a second refuses to start, a SIGKILLed owner does not block", async () => {
    const dataDir = tempDir()
    const first = await serveEmbedded(dataDir)

    const [httpPort, natsPort] = await getFreePorts(2)
    const second = serve(["--port", String(httpPort), "--nats-port", String(natsPort), "--data-dir", dataDir])
    expect(await second.exited).toEqual({ code: ExitCode.locked, signal: null })
    expect(second.output()).toContain(
      `capture: data dir ${dataDir} is in use by another capture serve (pid ${first.server.child.pid})`,
    )
    // It started nothing: no nats-server of its own on the store, no workers.
    expect(second.output()).not.toMatch(/embedded nats-server|session runtime|nats connected/)

    // The owner is untouched and still serves.
    expect(isAlive(first.natsPid)).toBe(true)
    const ready = await fetch(`${first.base}/readyz`)
    expect(ready.status).toBe(200)

    first.server.child.kill("SIGKILL")
    await first.server.exited
    expect(await waitUntilGone(first.natsPid, 5_000)).toBe(true)
    const restarted = await serveEmbedded(dataDir)
    expect((await fetch(`${restarted.base}/readyz`)).status).toBe(200)
    restarted.server.child.kill("SIGTERM")
    expect((await restarted.server.exited).code).toBe(0)
  }, 60_000)

  it("never leaves the embedded nats-server orphaned when serve is SIGKILLed", async () => {
    const { server, natsPid } = await serveEmbedded()
    server.child.kill("SIGKILL")
    await server.exited
    expect(await waitUntilGone(natsPid, 5_000)).toBe(true)
  })
})

describe("capture serve with an external NATS", () => {
  let nats: NatsServerHandle | undefined
  let nc: NatsConnection | undefined
  let runtime: SessionRuntime | undefined
  afterAll(async () => {
    await runtime?.stop()
    await nc?.close()
    await nats?.stop()
  })

  it("stops within its shutdown timeout when NATS is gone before the signal", async () => {
    const own = await startNatsServer()
    const port = await getFreePort()
    const server = serve(["--port", String(port), "--shutdown-timeout", "1s"], {
      NATS_URL: own.url,
      CAPTURE_API_KEY: API_KEY,
      CAPTURE_SILENCE_TIMEOUT_MS: "500",
    })
    await server.waitFor(/\[capture\] ready/)
    await Promise.all([1, 2].map(() => recordOneSegment(`http://127.0.0.1:${port}`)))
    await own.stop()
    await server.waitFor(/nats disconnected/)
    const stoppedAt = Date.now()
    server.child.kill("SIGTERM")
    const exit = await server.exited
    expect({ exit, took: Date.now() - stoppedAt < 10_000, log: server.output().slice(-3_000) }).toMatchObject(
      {
        exit: { code: 0, signal: null },
        took: true,
      },
    )
    expect(server.output()).toMatch(/nats connection closed/)
  }, 60_000)

  it("keeps durable timers across a hard kill: a restarted serve fails the stuck session", async () => {
    nats = await startNatsServer()
    const env = { NATS_URL: nats.url }
    const args = ["--start-timeout", "2s"]
    const first = serve(["--port", String(await getFreePort()), ...args], env)
    await first.waitFor(/\[capture\] ready/)

    // This process writes the session and its timer, but has no workers: it cannot fire it.
    nc = await connect({ servers: nats.url })
    runtime = await startSessionRuntime(nc, { workers: false, host: { startTimeoutMs: 2_000 } })
    const id = newSessionId()
    await run(runtime, create(id), start(id))
    first.child.kill("SIGKILL")
    await first.exited
    expect((await runtime.host.load(id)).state.value).toBe("starting")

    const second = serve(["--port", String(await getFreePort()), ...args], env)
    await second.waitFor(/\[capture\] ready/)
    await expect
      .poll(async () => (await runtime?.host.load(id))?.state.value, { timeout: 20_000, interval: 200 })
      .toBe("failed")
    expect((await runtime.host.load(id)).state.context.error?.code).toBe("start_timeout")

    second.child.kill("SIGTERM")
    expect((await second.exited).code).toBe(0)
  }, 60_000)
})
