import { mkdtempSync, rmSync } from "node:fs"
import { readdir, readFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { MediaStore, segmentObjectName } from "@capture/media"
import { startSessionRuntime } from "@capture/session-actor"
import { getFreePort, type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { jetstream } from "@nats-io/jetstream"
import { Objm } from "@nats-io/obj"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { type CliProcess, killIfRunning, runCli, startCli, startServe } from "./cli.js"
import { pollUntil, sleep } from "./endToEnd.js"

let nats: NatsServerHandle
let nc: NatsConnection
let media: MediaStore
let spool: string
const running: CliProcess[] = []

beforeAll(async () => {
  nats = await startNatsServer()
  nc = await connect({ servers: nats.url, maxReconnectAttempts: -1 })
  media = await MediaStore.open(nc)
  spool = mkdtempSync(join(tmpdir(), "capture-record-"))
})
afterEach(async () => {
  for (const child of running.splice(0)) await killIfRunning(child)
})
afterAll(async () => {
  await nc?.close()
  await nats?.stop()
  rmSync(spool, { recursive: true, force: true })
})

const API_KEY = "sk-record-test-key-0123456789"

const serveOn = async (port: number) => {
  const serve = startServe(["--port", String(port)], { NATS_URL: nats.url, CAPTURE_API_KEY: API_KEY })
  running.push(serve)
  await serve.waitFor(/\[capture\] ready/, 60_000)
  return serve
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

/** A session created with the API key, and a client token of its end user for the recorder. */
const newSession = async (base: string) => {
  const session = (await post(base, "/collection/default/capture/session", { end_user_id: "user-1" }))
    .id as string
  const token = (await post(base, "/capture/session/token", { user_id: "user-1" })).token as string
  return { session, token }
}

/** A session's stored segment records, polled until each of `channels` has at least `count`. */
const storedAtLeast = (session: string, channels: ReadonlyArray<string>, count: number) =>
  pollUntil(
    `${count} stored segments of each of ${channels.join(", ")}`,
    () => media.list(session),
    (records) => channels.every((c) => records.filter((r) => r.channel_id === c).length >= count),
    { timeoutMs: 60_000 },
  )

/**
 * Each channel's stored indexes are 0…n-1, once each, the last one final; the media stream holds
 * exactly one record per stored object (nothing stored twice, nothing stored without its record).
 */
const expectContiguousOnce = async (session: string, channels: ReadonlyArray<string>) => {
  const records = await media.list(session)
  let onStream = 0
  for await (const _ of media.readRecords(session)) onStream++
  expect(onStream).toBe(records.length)
  const bucket = await new Objm(jetstream(nc)).open(media.topology.bucket)
  const objects = (await bucket.list()).filter((o) => !o.deleted && o.name.startsWith(`${session}/`))
  expect(objects.map((o) => o.name).sort()).toEqual(
    records.map((r) => segmentObjectName(session, r.channel_id, r.index)).sort(),
  )
  for (const channel of channels) {
    const indexes = records.filter((r) => r.channel_id === channel).map((r) => r.index)
    expect(indexes, channel).toEqual(indexes.map((_, i) => i))
    expect(
      records.filter((r) => r.channel_id === channel && r.final).map((r) => r.index),
      channel,
    ).toEqual([indexes.length - 1])
  }
  return records
}

/** Pids of live processes whose command line mentions `text` (the ffmpegs of a spool folder). */
const processesMentioning = async (text: string): Promise<ReadonlyArray<number>> => {
  const pids: number[] = []
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    try {
      if ((await readFile(`/proc/${name}/cmdline`, "utf8")).replaceAll("\0", " ").includes(text)) {
        pids.push(Number(name))
      }
    } catch {
      // exited meanwhile
    }
  }
  return pids
}

/** Segment files waiting in a session's spool folder, over all its channels. */
const spooledSegments = async (sessionSpool: string): Promise<number> => {
  let count = 0
  for (const entry of await readdir(sessionSpool, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue
    count += (await readdir(join(sessionSpool, entry.name))).filter((name) => name.endsWith(".ts")).length
  }
  return count
}

describe("capture record against capture serve (real processes)", () => {
  it("keeps every segment, once, across a 10 s server outage mid-recording, and exports when the session stops", async () => {
    const RECORD_SECONDS = 18
    const OUTAGE_MS = 10_000
    const channels = ["display:1", "mic:default"]
    const port = await getFreePort()
    const base = `http://127.0.0.1:${port}`
    const first = await serveOn(port)
    const { session, token } = await newSession(base)

    const recording = runCli([
      ...["record", "--server", base, "--token", token, "--session", session],
      ...[
        "--synthetic",
        "--channels",
        channels.join(","),
        "--duration",
        `${RECORD_SECONDS}s`,
        "--spool",
        spool,
      ],
    ])
    // Let it upload a few segments, then take the server away for ~10 s and bring it back.
    await storedAtLeast(session, channels, 1)
    first.child.kill("SIGKILL")
    await first.exited
    const downAt = Date.now()
    await sleep(OUTAGE_MS)
    await serveOn(port)
    const upAt = Date.now()
    expect(upAt - downAt).toBeGreaterThanOrEqual(OUTAGE_MS)
    const result = await recording
    expect(result.code, result.stdout + result.stderr).toBe(0)

    // The muxer inside serve exports the moment the session stops.
    const runtime = await startSessionRuntime(nc)
    await pollUntil(
      "the session exported",
      async () => (await runtime.host.load(session)).state.value,
      (status) => status === "exported",
      { timeoutMs: 60_000, intervalMs: 100 },
    )
    const { state } = await runtime.host.load(session)
    expect(state.context.rtstreams.map((r) => r.name).sort()).toEqual(channels)
    const videoId = state.context.exports[0]?.video_id ?? ""
    const video = await fetch(`${base}/collection/default/video/${videoId}`, {
      headers: { "x-access-token": API_KEY },
    })
    const object = (await video.json()) as {
      data: { length: number; stream_url: string; download_url: string }
    }
    expect(video.status).toBe(200)
    expect(object.data.length).toBeGreaterThan(RECORD_SECONDS - 2.5)
    const mp4 = await fetch(object.data.download_url)
    expect(mp4.status).toBe(200)
    expect(mp4.headers.get("content-type")).toBe("video/mp4")
    expect((await mp4.arrayBuffer()).byteLength).toBeGreaterThan(10_000)
    expect((await fetch(object.data.stream_url)).status).toBe(200)

    const records = await expectContiguousOnce(session, channels)
    for (const channel of channels) {
      const own = records.filter((r) => r.channel_id === channel)
      // ~18 s in 2 s segments.
      expect(own.length).toBeGreaterThanOrEqual(8)
      const seconds = own.reduce((sum, r) => sum + r.duration_ms, 0) / 1000
      expect(seconds).toBeGreaterThan(RECORD_SECONDS - 2.5)
      expect(seconds).toBeLessThan(RECORD_SECONDS + 2.5)
      // Recorded while the server was down, kept in the spool, uploaded once it was back.
      const duringOutage = own.filter((r) => r.start_ms >= downAt && r.start_ms + r.duration_ms <= upAt)
      expect(duringOutage.length, channel).toBeGreaterThanOrEqual(3)
    }
  }, 150_000)

  it("keeps every segment, once, when the recorder is SIGKILLed mid-recording and restarted on the same spool", async () => {
    const channels = ["display:1", "mic:default", "system_audio:default"]
    const port = await getFreePort()
    const base = `http://127.0.0.1:${port}`
    await serveOn(port)
    const { session, token } = await newSession(base)
    const recordArgs = (duration: string) => [
      ...["record", "--server", base, "--token", token, "--session", session],
      ...["--synthetic", "--channels", channels.join(","), "--duration", duration, "--spool", spool],
    ]

    const first = startCli(recordArgs("60s"))
    running.push(first)
    const before = await storedAtLeast(session, channels, 2)
    first.child.kill("SIGKILL")
    expect((await first.exited).signal).toBe("SIGKILL")
    // Its ffmpegs die with it (parent-death signal), closing segments the recorder never uploaded.
    const sessionSpool = join(spool, session)
    await pollUntil(
      "the killed recorder's ffmpegs gone",
      () => processesMentioning(sessionSpool),
      (pids) => pids.length === 0,
      { timeoutMs: 10_000 },
    )
    expect(await spooledSegments(sessionSpool)).toBeGreaterThan(0)

    const second = await runCli(recordArgs("4s"))
    expect(second.code, second.stdout + second.stderr).toBe(0)
    // Everything acknowledged: the session's spool folder is gone.
    expect(await readdir(spool)).not.toContain(session)

    const records = await expectContiguousOnce(session, channels)
    for (const channel of channels) {
      const count = records.filter((r) => r.channel_id === channel).length
      // What the first recorder stored, what it left in the spool, and ~4 s more.
      expect(count, channel).toBeGreaterThanOrEqual(before.filter((r) => r.channel_id === channel).length + 2)
    }
  }, 150_000)
})
