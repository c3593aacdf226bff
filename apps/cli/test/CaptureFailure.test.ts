import { mkdtemp, readdir, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { CaptureClient, type CaptureEvents, Channel } from "@capture/recorder"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killIfRunning } from "./cli.js"
import {
  type CaptureServer,
  listenOnWebSocket,
  pollUntil,
  type SocketListener,
  startCaptureServer,
  startWebhookReceiver,
  type WebhookReceiver,
} from "./endToEnd.js"

// A recorder (in this process, its ffmpegs real children) whose capture cannot work, against a
// `capture serve` child: once every stored channel has given up, the session ends `failed` with
// the recorder's reason, announced like any failure (signed webhook, WebSocket).

let nats: NatsServerHandle
let server: CaptureServer
let hooks: WebhookReceiver
let work: string
const sockets: Array<SocketListener> = []

beforeAll(async () => {
  nats = await startNatsServer()
  server = await startCaptureServer(nats.url)
  hooks = await startWebhookReceiver(server.webhookSecret)
  work = await mkdtemp(join(tmpdir(), "capture-failure-e2e-"))
})
afterAll(async () => {
  for (const socket of sockets) socket.close()
  await hooks?.close()
  await killIfRunning(server?.process)
  await nats?.stop()
  if (work !== undefined) await rm(work, { recursive: true, force: true })
})

/** Pids of live processes whose command line mentions `text` (a channel's ffmpeg and its guard). */
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

/** A session with its webhook and WebSocket, and a recorder holding a client token of its user. */
const newSession = async (user: string) => {
  const socket = await listenOnWebSocket(server)
  sockets.push(socket)
  const session = (
    await server.data("POST", "/collection/default/capture/session", {
      end_user_id: user,
      callback_url: hooks.url,
      ws_connection_id: socket.connectionId,
    })
  ).id as string
  const token = (await server.data("POST", "/capture/session/token", { user_id: user })).token as string
  const client = new CaptureClient({
    clientToken: token,
    baseUrl: server.base,
    spoolDir: join(work, "spool"),
    synthetic: { width: 320, height: 180, frameRate: 15 },
    segmentSeconds: 1,
    restart: { delayMs: 200, maxFailures: 3, windowMs: 60_000 },
  })
  const errors: Array<CaptureEvents["recording:error"]> = []
  client.on("recording:error", (event) => errors.push(event))
  const stopped = client.next("recording:stopped")
  return { session, socket, client, errors, stopped }
}

type FailedError = { readonly code: string; readonly message: string }

/** The session's view, webhook and WebSocket event once it has failed; all three name `error`. */
const failureOf = async (session: string, socket: SocketListener): Promise<FailedError> => {
  const view = await pollUntil(
    `${session} failed`,
    () => server.data("GET", `/collection/default/capture/session/${session}`),
    (data) => data.status === "failed",
  )
  const error = view.error as FailedError
  const announced = await pollUntil(
    "capture_session.failed by webhook and WebSocket",
    async () => ({
      hook: hooks.received.find(
        (h) => h.envelope.capture_session_id === session && h.envelope.event === "capture_session.failed",
      ),
      socket: socket.events.find(
        (e) => e.capture_session_id === session && e.event === "capture_session.failed",
      ),
    }),
    (found) => found.hook !== undefined && found.socket !== undefined,
    { timeoutMs: 30_000 },
  )
  expect(announced.hook?.verified).toBe(true)
  expect(announced.hook?.envelope).toMatchObject({ status: "failed", data: { error } })
  expect(announced.socket).toMatchObject({ status: "failed", data: { error } })
  expect(hooks.undecodable).toEqual([])
  expect(socket.undecodable).toEqual([])
  return error
}

describe("a recorder that cannot capture fails its session (real processes)", () => {
  it("a device that does not exist: the session fails with the recorder's reason", async () => {
    const { session, socket, client, errors, stopped } = await newSession("user-nodevice")
    const camera = new Channel("camera:gone", "video", "A camera that is gone", {
      kind: "v4l2",
      device: "/dev/video-capture-e2e-missing",
    })
    await client.startCaptureSession({ sessionId: session, channels: [camera] })
    expect(await stopped).toEqual({ sessionId: session, reason: "capture_failed", currentStatus: "failed" })

    const error = await failureOf(session, socket)
    expect(error.code).toBe("capture_failed")
    expect(error.message).toContain("camera:gone")
    expect(error.message).toContain("/dev/video-capture-e2e-missing")
    expect(errors.map((e) => e.error._tag)).toEqual([
      "CaptureFailed",
      "CaptureFailed",
      "CaptureFailed",
      "CaptureGaveUp",
    ])
    // The gateway refuses the recorder's media from now on; the recorder sends none.
    expect(client.state).toBe("ended")
    await client.shutdown()
  }, 60_000)

  it("an ffmpeg killed again and again: after the last restart the session fails", async () => {
    const { session, socket, client, errors, stopped } = await newSession("user-killed")
    await client.startCaptureSession({ sessionId: session, channels: ["display:1"] })
    // Recording for real first: the session is active.
    await pollUntil(
      `${session} active`,
      () => server.data("GET", `/collection/default/capture/session/${session}`),
      (data) => data.status === "active",
      { timeoutMs: 30_000 },
    )
    const channelSpool = join(work, "spool", session, "display:1")
    let ended = false
    void stopped.then(() => {
      ended = true
    })
    let kills = 0
    while (!ended) {
      for (const pid of await processesMentioning(channelSpool)) {
        try {
          process.kill(pid, "SIGKILL")
          kills++
        } catch {
          // gone already
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect(kills).toBeGreaterThan(0)
    expect(await stopped).toEqual({ sessionId: session, reason: "capture_failed", currentStatus: "failed" })

    const error = await failureOf(session, socket)
    expect(error.code).toBe("capture_failed")
    expect(error.message).toMatch(/ffmpeg for display:1 (stopped|could not start)/)
    expect(errors.filter((e) => e.error._tag === "CaptureFailed")).toHaveLength(3)
    expect(errors.at(-1)?.error._tag).toBe("CaptureGaveUp")
    expect(await processesMentioning(channelSpool)).toEqual([])
    await client.shutdown()
  }, 60_000)
})
