import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { MediaStore } from "@capture/media"
import { startSessionRuntime } from "@capture/session-actor"
import { getFreePort, type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { killIfRunning, runCli, type ServeProcess, startServe } from "./cli.js"

let nats: NatsServerHandle
let nc: NatsConnection
let spool: string
const serves: Array<ServeProcess> = []

beforeAll(async () => {
  nats = await startNatsServer()
  nc = await connect({ servers: nats.url })
  spool = mkdtempSync(join(tmpdir(), "capture-record-"))
})
afterEach(async () => {
  for (const serve of serves.splice(0)) await killIfRunning(serve)
})
afterAll(async () => {
  await nc?.close()
  await nats?.stop()
  rmSync(spool, { recursive: true, force: true })
})

const API_KEY = "sk-record-test-key-0123456789"

const serveOn = async (port: number) => {
  const process = startServe(["--port", String(port)], { NATS_URL: nats.url, CAPTURE_API_KEY: API_KEY })
  serves.push(process)
  await process.waitFor(/\[capture\] ready/)
  return process
}

const post = async (base: string, path: string, body: object) => {
  const response = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "x-access-token": API_KEY, "content-type": "application/json" },
    body: JSON.stringify(body),
  })
  const envelope = (await response.json()) as { data: Record<string, unknown> }
  expect(response.status, JSON.stringify(envelope)).toBe(200)
  return envelope.data
}

describe("capture record against capture serve (real processes)", () => {
  it("keeps every segment, once, across a server outage mid-recording, and exports when the session stops", async () => {
    const port = await getFreePort()
    const base = `http://127.0.0.1:${port}`
    const first = await serveOn(port)
    const session = (await post(base, "/collection/default/capture/session", { end_user_id: "user-1" }))
      .id as string
    const token = (await post(base, "/capture/session/token", { user_id: "user-1" })).token as string

    const recording = runCli([
      ...["record", "--server", base, "--token", token, "--session", session],
      ...["--synthetic", "--channels", "display:1,mic:default", "--duration", "9s", "--spool", spool],
    ])
    // Let it upload a few segments, then take the server away for a while and bring it back.
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    first.child.kill("SIGKILL")
    await first.exited
    await new Promise((resolve) => setTimeout(resolve, 5_000))
    await serveOn(port)
    const result = await recording
    expect(result.code, result.stdout + result.stderr).toBe(0)

    // The muxer inside serve exports the moment the session stops.
    const runtime = await startSessionRuntime(nc)
    let state = (await runtime.host.load(session)).state
    for (let i = 0; state.value !== "exported" && i < 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      state = (await runtime.host.load(session)).state
    }
    expect(state.value).toBe("exported")
    expect(state.context.rtstreams.map((r) => r.name).sort()).toEqual(["display:1", "mic:default"])
    const videoId = state.context.exports[0]?.video_id ?? ""
    const video = await fetch(`${base}/collection/default/video/${videoId}`, {
      headers: { "x-access-token": API_KEY },
    })
    const object = (await video.json()) as {
      data: { length: number; stream_url: string; download_url: string }
    }
    expect(video.status).toBe(200)
    expect(object.data.length).toBeGreaterThan(9 - 2.5)
    const mp4 = await fetch(object.data.download_url)
    expect(mp4.status).toBe(200)
    expect(mp4.headers.get("content-type")).toBe("video/mp4")
    expect((await mp4.arrayBuffer()).byteLength).toBeGreaterThan(10_000)
    expect((await fetch(object.data.stream_url)).status).toBe(200)

    const media = await MediaStore.open(nc)
    const records = await media.list(session)
    let raw = 0
    for await (const _ of media.readRecords(session)) raw++
    expect(raw).toBe(records.length)
    for (const channel of ["display:1", "mic:default"]) {
      const indexes = records.filter((r) => r.channel_id === channel).map((r) => r.index)
      // ~9 s in 2 s segments, contiguous from 0, the last one final.
      expect(indexes.length).toBeGreaterThanOrEqual(4)
      expect(indexes).toEqual(indexes.map((_, i) => i))
      expect(records.filter((r) => r.channel_id === channel && r.final).map((r) => r.index)).toEqual([
        indexes.length - 1,
      ])
      const seconds =
        records.filter((r) => r.channel_id === channel).reduce((sum, r) => sum + r.duration_ms, 0) / 1000
      expect(seconds).toBeGreaterThan(9 - 2.5)
      expect(seconds).toBeLessThan(9 + 2.5)
    }
  }, 90_000)
})
