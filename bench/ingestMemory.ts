/**
 * bench:ingest-memory — the gateway's memory for what it holds: segment bodies in flight, and
 * live sessions.
 *
 * Bodies in flight: its peak resident set (RSS, sampled from /proc every 50 ms) above idle while
 * one, then `--uploads` (40) PUTs of `--megabytes` (32) MiB each run at once, beside the bytes
 * those bodies add up to. A gateway that buffered bodies whole would grow by about the bytes in
 * flight (issue 15 measured 1.89 GB for 40 × 32 MB); one that streams grows by a chunk or two per
 * upload.
 *
 * Live sessions: a fresh server's RSS when idle (after a warm-up session, so code loaded and
 * compiled on first use is not counted as the sessions'), then with `--sessions` (200) sessions
 * of three channels started and recording (`--live-segments` (3) segments uploaded per channel,
 * the sessions left running), each figure the median of samples over `--settle-seconds` (5);
 * RSS per live session is the difference over the number of sessions.
 *
 * The server is `capture serve --role gateway` as a child process against a nats-server of the
 * testkit; every upload of the first part is its own session and client token (so the
 * per-credential bound on uploads in flight does not refuse any), its body real MPEG-TS segments
 * one after another.
 *
 *   pnpm bench:ingest-memory [--uploads 40] [--megabytes 32] [--sessions 200] [--live-segments 3]
 *                            [--settle-seconds 5] [--skip-in-flight]
 */
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { request } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { stopSessionPath } from "@capture/protocol"
import { resolveFfmpeg } from "@capture/recorder"
import { startNatsServer } from "@capture/testkit"
import { startCaptureServer } from "./lib/captureServer.js"
import { positiveInteger } from "./lib/flags.js"
import { accepted, makeJsonClient, stringField } from "./lib/jsonClient.js"
import { measure, writeResults } from "./lib/stats.js"
import { Teardown } from "./lib/teardown.js"

const API_KEY = "sk-bench-ingest-memory-key"
const MiB = 1024 * 1024

const { values: flags } = parseArgs({
  options: {
    uploads: { type: "string" },
    megabytes: { type: "string" },
    sessions: { type: "string" },
    "live-segments": { type: "string" },
    "settle-seconds": { type: "string" },
    "skip-in-flight": { type: "boolean", default: false },
  },
})
const UPLOADS = positiveInteger("uploads", flags.uploads, 40)
const MEGABYTES = positiveInteger("megabytes", flags.megabytes, 32)
const LIVE_SESSIONS = positiveInteger("sessions", flags.sessions, 200)
const LIVE_SEGMENTS = positiveInteger("live-segments", flags["live-segments"], 3)
const SETTLE_SECONDS = positiveInteger("settle-seconds", flags["settle-seconds"], 5)
/** The channels of a live session, as the recorder starts them. */
const LIVE_CHANNELS = ["display:1", "mic:default", "system_audio:default"]

/** One real two-second MPEG-TS segment (320x240 H.264). */
const makeSegment = (): Buffer => {
  const dir = mkdtempSync(join(tmpdir(), "capture-bench-memory-"))
  try {
    execFileSync(resolveFfmpeg(), [
      ...[
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=2",
      ],
      ...["-c:v", "libx264", "-f", "mpegts", join(dir, "segment.ts")],
    ])
    return readFileSync(join(dir, "segment.ts"))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A body of at least `bytes`: `segment` repeated, so it is MPEG-TS throughout. */
const makeBody = (segment: Buffer, bytes: number): Buffer =>
  Buffer.concat(Array.from({ length: Math.ceil(bytes / segment.length) }, () => segment))

const rssBytes = (pid: number): number => {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
  return Number(match?.[1] ?? 0) * 1024
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? 0
}

/** `pid`'s RSS sampled every 100 ms for `seconds`: the median. */
const settledRss = async (pid: number, seconds: number): Promise<number> => {
  const samples: Array<number> = []
  const until = performance.now() + seconds * 1000
  while (performance.now() < until) {
    samples.push(rssBytes(pid))
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return median(samples)
}

/** Samples `pid`'s RSS until stopped; resolves with the peak. */
const samplePeak = (pid: number) => {
  let peak = rssBytes(pid)
  const timer = setInterval(() => {
    peak = Math.max(peak, rssBytes(pid))
  }, 50)
  return () => {
    clearInterval(timer)
    return Math.max(peak, rssBytes(pid))
  }
}

/** PUTs `body` as segment `index` of the session, slowly enough that every upload overlaps. */
const put = (base: string, path: string, token: string, body: Buffer, sha256: string, startMs = Date.now()) =>
  new Promise<number>((resolve, reject) => {
    const req = request(`${base}${path}`, {
      method: "PUT",
      headers: {
        "x-access-token": token,
        "content-type": "video/mp2t",
        "content-length": body.length,
        "x-segment-start-ms": String(startMs),
        "x-segment-duration-ms": "2000",
        "x-segment-sha256": sha256,
      },
    })
    req.on("response", (res) => {
      res.resume()
      res.on("end", () => resolve(res.statusCode ?? 0))
    })
    req.on("error", reject)
    // 1 MiB pieces, each after the last is flushed: the server reads as the network delivers.
    let offset = 0
    const next = () => {
      if (offset >= body.length) return void req.end()
      const piece = body.subarray(offset, offset + MiB)
      offset += piece.length
      if (req.write(piece)) setImmediate(next)
      else req.once("drain", next)
    }
    next()
  })

const mb = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`

/** Peak RSS above idle while bodies upload at once: one, then `UPLOADS`. */
const inFlightBenchmark = async (teardown: Teardown, segment: Buffer) => {
  const body = makeBody(segment, MEGABYTES * MiB)
  const sha256 = createHash("sha256").update(body).digest("hex")
  const nats = teardown.add("nats-server", await startNatsServer({ kind: "process" }))
  const server = teardown.add(
    "capture serve",
    await startCaptureServer({
      natsUrl: nats.url,
      apiKey: API_KEY,
      args: ["--role", "gateway"],
      env: { CAPTURE_MAX_SEGMENT_BYTES: String(body.length) },
    }),
  )
  const json = makeJsonClient(server.url, { "x-access-token": API_KEY }, { maxSockets: 8 })
  const sessions: Array<{ readonly path: string; readonly token: string }> = []
  for (let i = 0; i < UPLOADS; i++) {
    const created = accepted(
      "create",
      await json.send("POST", "/collection/default/capture/session", { end_user_id: `user-${i}` }),
    )
    const id = stringField(created, "id")
    accepted(
      "start",
      await json.send("POST", "/capture/session/start", {
        session_id: id,
        channels: [{ channel_id: "display:1" }],
      }),
    )
    const token = stringField(
      accepted("token", await json.send("POST", "/capture/session/token", { user_id: `user-${i}` })),
      "token",
    )
    sessions.push({ path: `/capture/session/${id}/channels/display%3A1/segments/`, token })
  }
  json.close()

  const round = async (uploads: number, index: number) => {
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    const idle = rssBytes(server.pid)
    const stop = samplePeak(server.pid)
    const started = performance.now()
    const statuses = await Promise.all(
      sessions.slice(0, uploads).map((s) => put(server.url, `${s.path}${index}`, s.token, body, sha256)),
    )
    const seconds = (performance.now() - started) / 1000
    const peak = stop()
    const refused = statuses.filter((status) => status !== 200)
    if (refused.length > 0) throw new Error(`uploads refused: ${refused.join(", ")}`)
    return { uploads, idleBytes: idle, peakBytes: peak, growthBytes: peak - idle, seconds }
  }
  const one = await round(1, 0)
  const many = await round(UPLOADS, 1)
  const inFlight = UPLOADS * body.length
  console.log(
    `\nGateway RSS while ${MEGABYTES} MiB segment bodies upload at once (capture serve --role gateway)`,
  )
  console.log(
    `${"".padEnd(36)}${"idle".padStart(10)}${"peak".padStart(10)}${"growth".padStart(10)}${"bodies".padStart(12)}`,
  )
  for (const r of [one, many]) {
    console.log(
      `${`${r.uploads} upload(s) at once`.padEnd(36)}${mb(r.idleBytes).padStart(10)}${mb(r.peakBytes).padStart(10)}${mb(r.growthBytes).padStart(10)}${mb(r.uploads * body.length).padStart(12)}`,
    )
  }
  console.log(
    `growth per upload in flight: ${mb(many.growthBytes / UPLOADS)} (bodies: ${mb(body.length)} each); growth / bytes in flight: ${(many.growthBytes / inFlight).toFixed(3)}`,
  )
  return { bodyBytes: body.length, one, many }
}

/**
 * RSS of a fresh server idle, then with `LIVE_SESSIONS` three-channel sessions started and
 * recording (segments uploaded on every channel, the sessions left running).
 */
const liveSessionsBenchmark = async (teardown: Teardown, segment: Buffer) => {
  const sha256 = createHash("sha256").update(segment).digest("hex")
  const nats = teardown.add("nats-server (live sessions)", await startNatsServer({ kind: "process" }))
  const server = teardown.add(
    "capture serve (live sessions)",
    await startCaptureServer({
      natsUrl: nats.url,
      apiKey: API_KEY,
      args: ["--role", "gateway"],
      // The sessions stay live however long the run takes.
      env: { CAPTURE_SILENCE_TIMEOUT_MS: String(3_600_000) },
    }),
  )
  const json = makeJsonClient(server.url, { "x-access-token": API_KEY }, { maxSockets: 8 })
  /** Creates, starts and records `count` sessions (8 requests at once, with the account's key). */
  const recordSessions = async (count: number) => {
    const ids: Array<string> = []
    await measure("live sessions", count, 8, async () => {
      const id = stringField(
        accepted(
          "create",
          await json.send("POST", "/collection/default/capture/session", { end_user_id: "live" }),
        ),
        "id",
      )
      accepted(
        "start",
        await json.send("POST", "/capture/session/start", {
          session_id: id,
          channels: LIVE_CHANNELS.map((channel_id) => ({ channel_id })),
        }),
      )
      const startMs = Date.now()
      for (let index = 0; index < LIVE_SEGMENTS; index++) {
        for (const channel of LIVE_CHANNELS) {
          const path = `/capture/session/${id}/channels/${encodeURIComponent(channel)}/segments/${index}`
          const status = await put(server.url, path, API_KEY, segment, sha256, startMs + index * 2_000)
          if (status !== 200) throw new Error(`PUT ${path} answered ${status}`)
        }
      }
      ids.push(id)
    })
    return ids
  }
  // Code loaded and compiled on first use, and the first buffers, are not the sessions'.
  const warmUp = await recordSessions(4)
  for (const id of warmUp) accepted("stop", await json.send("POST", stopSessionPath(id)))
  const idleBytes = await settledRss(server.pid, SETTLE_SECONDS)
  const started = performance.now()
  await recordSessions(LIVE_SESSIONS)
  const recordSeconds = (performance.now() - started) / 1000
  const liveBytes = await settledRss(server.pid, SETTLE_SECONDS)
  json.close()
  const perSession = (liveBytes - idleBytes) / LIVE_SESSIONS
  console.log(
    `\nGateway RSS per live session: ${LIVE_SESSIONS} sessions × ${LIVE_CHANNELS.length} channels started, ${LIVE_SEGMENTS} segments uploaded per channel (${mb(segment.length * LIVE_SEGMENTS * LIVE_CHANNELS.length * LIVE_SESSIONS)} in ${recordSeconds.toFixed(0)} s), left running`,
  )
  console.log(
    `idle ${mb(idleBytes)}, with ${LIVE_SESSIONS} live sessions ${mb(liveBytes)} (medians over ${SETTLE_SECONDS} s): ` +
      `${((liveBytes - idleBytes) / MiB).toFixed(1)} MiB more, ${(perSession / MiB).toFixed(3)} MiB (${(perSession / 1024).toFixed(0)} KiB) per live session`,
  )
  return {
    sessions: LIVE_SESSIONS,
    segmentsPerChannel: LIVE_SEGMENTS,
    idleBytes,
    liveBytes,
    perSessionBytes: perSession,
  }
}

const main = async () => {
  const teardown = new Teardown()
  try {
    const segment = makeSegment()
    const inFlight = flags["skip-in-flight"] ? null : await inFlightBenchmark(teardown, segment)
    await teardown.run()
    const live = await liveSessionsBenchmark(teardown, segment)
    const file = writeResults("ingest-memory", { uploads: UPLOADS, inFlight, live })
    console.log(`results: ${file}`)
  } finally {
    await teardown.run()
  }
}

await main()
