/**
 * bench:push — server CPU per pushed 720p stream-minute over RTMP, beside ffmpeg receiving the
 * same stream and writing the same segments itself, in the same run.
 *
 * A 720p30 H.264 (3 Mb/s, a keyframe every 2 s) + AAC test pattern is encoded once to FLV; each
 * publish is `ffmpeg -re -i that.flv -c copy -f flv rtmp://…` (the publisher's CPU is not counted).
 *
 * - ffmpeg alone: `ffmpeg -listen 1 -f flv -i rtmp://127.0.0.1:PORT/live/key` writing the video
 *   and the audio as 2 s MPEG-TS segments to a directory (stream copy, as the gateway's ffmpeg);
 *   its CPU from /proc (the shell that waits for it reports its reaped child's time);
 * - Capture: a nats-server child and `capture serve --role gateway` with `CAPTURE_RTMP_PORT`; a
 *   `source: "rtmp"` session is started and pushed to; the gateway's CPU (node and the ffmpeg it
 *   runs) from the start of the push until the session stopped (every segment stored, the last
 *   final), and nats-server's over the same span, printed apart; so are the ffmpeg's share and the
 *   same gateway's CPU while idle for as long before the push (its workers' own cost).
 *
 * Printed and written to bench/results/: CPU s per stream-minute for each and the ratio (target:
 * Capture's gateway ≤ 1.2× ffmpeg alone). WHIP is not built yet, so not measured.
 *
 *   pnpm bench:push [--seconds 60]
 */
import { execFileSync, spawn } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { resolveFfmpeg } from "@capture/recorder/Ffmpeg"
import { getFreePort, startNatsServer } from "@capture/testkit"
import { startCaptureServer } from "./lib/captureServer.js"
import { accepted, makeJsonClient, stringField } from "./lib/jsonClient.js"
import { cpuMs, descendants, treeCpuMs } from "./lib/processCpu.js"
import { writeResults } from "./lib/stats.js"
import { Teardown } from "./lib/teardown.js"

const API_KEY = "sk-bench-push-key"
const SEGMENT_SECONDS = 2
const { values: flags } = parseArgs({ options: { seconds: { type: "string", default: "60" } } })
const seconds = Math.max(10, Number(flags.seconds))
const ffmpeg = resolveFfmpeg()

const commandOf = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim()
  } catch {
    return ""
  }
}

/** The stream every publish sends: 720p30 H.264 at 3 Mb/s with a keyframe every 2 s, and AAC. */
const encodeStream = (dir: string): string => {
  const file = join(dir, "stream.flv")
  execFileSync(ffmpeg, [
    ...["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"],
    ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", String(seconds)],
    ...["-c:v", "libx264", "-preset", "veryfast", "-b:v", "3M", "-g", "60", "-c:a", "aac", "-b:a", "128k"],
    ...["-f", "flv", file],
  ])
  return file
}

/** Publishes `file` in real time to `url`; resolves with ffmpeg's exit code and what it said. */
const publish = (file: string, url: string) =>
  new Promise<{ readonly code: number | null; readonly stderr: string }>((resolve) => {
    const child = spawn(ffmpeg, [
      ...["-hide_banner", "-loglevel", "error", "-re", "-i", file],
      ...["-c", "copy", "-f", "flv", url],
    ])
    let stderr = ""
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    child.on("close", (code) => resolve({ code, stderr }))
  })

const segmentArgs = (kind: "video" | "audio", dir: string) => [
  ...["-map", kind === "video" ? "0:v" : "0:a", "-c", "copy", "-f", "segment", "-segment_format", "mpegts"],
  ...["-segment_time", String(SEGMENT_SECONDS), "-reset_timestamps", "0", join(dir, `${kind}-%08d.ts`)],
]

/** ffmpeg as the RTMP server, writing the segments itself: its CPU ms and the segments it wrote. */
const ffmpegAlone = async (file: string): Promise<{ cpuMs: number; segments: number }> => {
  const dir = mkdtempSync(join(tmpdir(), "bench-push-ffmpeg-"))
  try {
    const port = await getFreePort()
    const url = `rtmp://127.0.0.1:${port}/live/bench`
    const args = [
      ...["-hide_banner", "-loglevel", "error", "-listen", "1", "-f", "flv", "-i", url],
      ...segmentArgs("video", dir),
      ...segmentArgs("audio", dir),
    ]
    // The shell waits for ffmpeg, then reports its reaped children's CPU (cutime + cstime).
    const quoted = args.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ")
    const server = spawn("sh", ["-c", `'${ffmpeg}' ${quoted}; cat /proc/$$/stat`], {
      stdio: ["ignore", "pipe", "inherit"],
    })
    let stat = ""
    server.stdout.on("data", (chunk: Buffer) => {
      stat += chunk.toString()
    })
    const done = new Promise<void>((resolve) => server.on("close", () => resolve()))
    // ffmpeg takes a moment to listen; a publisher too early is refused, so try again.
    for (let attempt = 0; ; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, attempt === 0 ? 1_000 : 300))
      if ((await publish(file, url)).code === 0 || attempt > 20) break
    }
    await done
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return { cpuMs: (Number(fields[13]) + Number(fields[14])) * 10, segments: readdirSync(dir).length }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

interface CaptureRun {
  readonly gatewayCpuMs: number
  /** Of which the ffmpeg that cuts the publish into segments (the rest is node). */
  readonly segmenterCpuMs: number
  /** The same gateway idle for as long, before the push: its workers' own cost. */
  readonly idleCpuMs: number
  readonly natsCpuMs: number
}

const capture = async (file: string): Promise<CaptureRun> => {
  const teardown = new Teardown()
  try {
    const nats = teardown.add("nats", await startNatsServer({ kind: "process" }))
    const rtmpPort = await getFreePort()
    const gateway = teardown.add(
      "gateway",
      await startCaptureServer({
        natsUrl: nats.url,
        apiKey: API_KEY,
        args: ["--role", "gateway"],
        env: { CAPTURE_RTMP_PORT: String(rtmpPort), CAPTURE_RTMP_GRACE_MS: "1000" },
      }),
    )
    const client = makeJsonClient(gateway.url, { "x-access-token": API_KEY }, { maxSockets: 2 })
    teardown.add("client", { stop: async () => client.close() })
    // Before the session (a started one fails after --start-timeout without media): the gateway
    // idle (its session workers, the quota and rate-limit syncs) for as long as the push.
    const idle0 = treeCpuMs(gateway.pid)
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
    const idleCpuMs = treeCpuMs(gateway.pid) - idle0
    const created = accepted(
      "create",
      await client.send("POST", "/collection/default/capture/session", { end_user_id: "bench-push" }),
    )
    const sessionId = stringField(created, "id")
    const started = accepted(
      "start",
      await client.send("POST", "/capture/session/start", { session_id: sessionId, source: "rtmp" }),
    )
    const url = stringField(started.rtmp as Record<string, unknown>, "url")
    const natsPid = descendants(process.pid).find((pid) => commandOf(pid) === "nats-server")
    const gateway0 = treeCpuMs(gateway.pid)
    const node0 = cpuMs(gateway.pid)
    const nats0 = natsPid === undefined ? 0 : cpuMs(natsPid)
    const published = await publish(file, url)
    if (published.code !== 0)
      throw new Error(`the publisher exited with ${published.code}: ${published.stderr}`)
    for (const deadline = Date.now() + 120_000; ; ) {
      const view = accepted(
        "session",
        await client.send("GET", `/collection/default/capture/session/${sessionId}`),
      )
      if (view.status === "stopped" || view.status === "exported") break
      if (Date.now() > deadline) throw new Error(`the session did not stop: ${JSON.stringify(view)}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    return {
      gatewayCpuMs: treeCpuMs(gateway.pid) - gateway0,
      segmenterCpuMs: treeCpuMs(gateway.pid) - gateway0 - (cpuMs(gateway.pid) - node0),
      idleCpuMs,
      natsCpuMs: natsPid === undefined ? Number.NaN : cpuMs(natsPid) - nats0,
    }
  } finally {
    await teardown.run()
  }
}

const main = async () => {
  const work = mkdtempSync(join(tmpdir(), "bench-push-"))
  try {
    const file = encodeStream(work)
    console.log(
      `bench:push: ${seconds} s of 720p30 H.264 3 Mb/s + AAC, pushed over RTMP in real time, ${SEGMENT_SECONDS} s segments, load ${loadavg()[0]?.toFixed(1)}`,
    )
    const alone = await ffmpegAlone(file)
    const run = await capture(file)
    const minutes = seconds / 60
    const perMinute = (ms: number) => ms / 1000 / minutes
    console.log(`\n${"".padEnd(44)}${"CPU s / stream-minute".padStart(22)}${"vs ffmpeg alone".padStart(17)}`)
    console.log(
      `${"ffmpeg alone (RTMP server + segments)".padEnd(44)}${perMinute(alone.cpuMs).toFixed(2).padStart(22)}${"1.00x".padStart(17)}`,
    )
    console.log(
      `${"capture gateway (node + its ffmpeg)".padEnd(44)}${perMinute(run.gatewayCpuMs).toFixed(2).padStart(22)}${`${(run.gatewayCpuMs / alone.cpuMs).toFixed(2)}x`.padStart(17)}`,
    )
    console.log(
      `${"  of which its ffmpeg (segments)".padEnd(44)}${perMinute(run.segmenterCpuMs).toFixed(2).padStart(22)}`,
    )
    console.log(
      `${"  the same gateway idle, for comparison".padEnd(44)}${perMinute(run.idleCpuMs).toFixed(2).padStart(22)}`,
    )
    console.log(
      `${"nats-server (storing the segments)".padEnd(44)}${perMinute(run.natsCpuMs).toFixed(2).padStart(22)}`,
    )
    const file2 = writeResults("push", {
      date: new Date().toISOString(),
      load: loadavg(),
      seconds,
      segmentSeconds: SEGMENT_SECONDS,
      stream: "1280x720 30 fps H.264 3 Mb/s, AAC 128 kb/s",
      target: { gatewayVsFfmpeg: 1.2 },
      ffmpegAlone: { ...alone, cpuSecondsPerMinute: perMinute(alone.cpuMs) },
      capture: {
        ...run,
        gatewayCpuSecondsPerMinute: perMinute(run.gatewayCpuMs),
        natsCpuSecondsPerMinute: perMinute(run.natsCpuMs),
        ratio: run.gatewayCpuMs / alone.cpuMs,
      },
      whip: "not built yet",
    })
    console.log(`\nwrote ${file2}`)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  },
)
