/**
 * bench:ingest-memory — how much memory the gateway holds for segment bodies in flight: its peak
 * resident set (RSS, sampled from /proc every 50 ms) above idle while one, then `--uploads` (40)
 * PUTs of `--megabytes` (32) MiB each run at once, beside the bytes those bodies add up to. A
 * gateway that buffered bodies whole would grow by about the bytes in flight (issue 15 measured
 * 1.89 GB for 40 × 32 MB); one that streams grows by a chunk or two per upload.
 *
 * The server is `capture serve --role gateway` as a child process against a nats-server of the
 * testkit; every upload is its own session and client token (so the per-credential bound on
 * uploads in flight does not refuse any), its body real MPEG-TS segments one after another.
 *
 *   pnpm bench:ingest-memory [--uploads 40] [--megabytes 32]
 */
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { request } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { resolveFfmpeg } from "@capture/recorder"
import { startNatsServer } from "@capture/testkit"
import { startCaptureServer } from "./lib/captureServer.js"
import { positiveInteger } from "./lib/flags.js"
import { accepted, makeJsonClient, stringField } from "./lib/jsonClient.js"
import { writeResults } from "./lib/stats.js"
import { Teardown } from "./lib/teardown.js"

const API_KEY = "sk-bench-ingest-memory-key"
const MiB = 1024 * 1024

const { values: flags } = parseArgs({
  options: { uploads: { type: "string" }, megabytes: { type: "string" } },
})
const UPLOADS = positiveInteger("uploads", flags.uploads, 40)
const MEGABYTES = positiveInteger("megabytes", flags.megabytes, 32)

/** A body of at least `bytes`: one real segment repeated, so it is MPEG-TS throughout. */
const makeBody = (bytes: number): Buffer => {
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
    const segment = readFileSync(join(dir, "segment.ts"))
    return Buffer.concat(Array.from({ length: Math.ceil(bytes / segment.length) }, () => segment))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const rssBytes = (pid: number): number => {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
  return Number(match?.[1] ?? 0) * 1024
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
const put = (base: string, path: string, token: string, body: Buffer, sha256: string) =>
  new Promise<number>((resolve, reject) => {
    const req = request(`${base}${path}`, {
      method: "PUT",
      headers: {
        "x-access-token": token,
        "content-type": "video/mp2t",
        "content-length": body.length,
        "x-segment-start-ms": String(Date.now()),
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

const main = async () => {
  const teardown = new Teardown()
  try {
    const body = makeBody(MEGABYTES * MiB)
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
    const mb = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`
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
    const file = writeResults("ingest-memory", { uploads: UPLOADS, bodyBytes: body.length, one, many })
    console.log(`results: ${file}`)
  } finally {
    await teardown.run()
  }
}

await main()
