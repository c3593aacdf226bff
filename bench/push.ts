/**
 * bench:push — server CPU per pushed 720p stream-minute over RTMP and over WHIP, each beside
 * ffmpeg receiving the same stream and writing the same segments itself, in the same run.
 *
 * A 720p30 H.264 (3 Mb/s, a keyframe every 2 s) + AAC test pattern is encoded once to FLV; each
 * RTMP publish is `ffmpeg -re -i that.flv -c copy -f flv rtmp://…` (the publisher's CPU is not
 * counted). For WHIP the same picture with Opus audio (no B-frames, SPS/PPS at every keyframe, as
 * browsers send) goes out as plain RTP from `ffmpeg -re … -c copy -f rtp` to werift in this
 * process, which publishes it over WHIP (its CPU is this process's). The WHIP baseline (ffmpeg
 * reading that RTP by an SDP and writing the segments itself) is not measured yet: ffmpeg fed
 * straight by ffmpeg's RTP muxer stops at its first packet ("first pts and dts value must be
 * set"), which the gateway's relay (both kinds started at once, no RTCP) does not hit.
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
 * Capture's gateway ≤ 1.2× ffmpeg alone).
 *
 * `--source whip` (or `both`) adds WHIP; not the default, as werift publishing to werift on
 * loopback often fails its ICE checks (the publisher retries, within limits).
 *
 *   pnpm bench:push [--seconds 60] [--source rtmp|whip|both]
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
import { publishWhip } from "./lib/whipPublisher.js"

const API_KEY = "sk-bench-push-key"
const SEGMENT_SECONDS = 2
const { values: flags } = parseArgs({
  options: { seconds: { type: "string", default: "60" }, source: { type: "string", default: "rtmp" } },
})
const seconds = Math.max(10, Number(flags.seconds))
const sources =
  flags.source === "both" ? (["rtmp", "whip"] as const) : ([flags.source as "rtmp" | "whip"] as const)
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

/** The same picture with Opus audio as MPEG-TS, SPS/PPS before every keyframe (as a browser sends them). */
const encodeRtpStream = (dir: string): string => {
  const file = join(dir, "stream.ts")
  execFileSync(ffmpeg, [
    ...["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"],
    ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", String(seconds)],
    ...[
      "-c:v",
      "libx264",
      "-preset",
      "veryfast",
      "-b:v",
      "3M",
      "-g",
      "60",
      "-x264-params",
      "repeat-headers=1",
    ],
    ...["-c:a", "libopus", "-b:a", "128k", "-f", "mpegts", file],
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

const segmentArgs = (kind: "video" | "audio", dir: string, codec: ReadonlyArray<string> = ["-c", "copy"]) => [
  ...["-map", kind === "video" ? "0:v" : "0:a", ...codec, "-f", "segment", "-segment_format", "mpegts"],
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

const capture = async (
  source: "rtmp" | "whip",
  push: (started: Record<string, unknown>) => Promise<void>,
): Promise<CaptureRun> => {
  const teardown = new Teardown()
  try {
    const nats = teardown.add("nats", await startNatsServer({ kind: "process" }))
    const env =
      source === "rtmp"
        ? { CAPTURE_RTMP_PORT: String(await getFreePort()), CAPTURE_RTMP_GRACE_MS: "1000" }
        : // Long enough for the publisher to connect again should its first ICE attempt fail.
          { CAPTURE_WHIP_ICE_ADDRESSES: "127.0.0.1", CAPTURE_WHIP_GRACE_MS: "5000" }
    const gateway = teardown.add(
      "gateway",
      await startCaptureServer({ natsUrl: nats.url, apiKey: API_KEY, args: ["--role", "gateway"], env }),
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
      await client.send("POST", "/capture/session/start", { session_id: sessionId, source }),
    )
    const natsPid = descendants(process.pid).find((pid) => commandOf(pid) === "nats-server")
    const gateway0 = treeCpuMs(gateway.pid)
    const node0 = cpuMs(gateway.pid)
    const nats0 = natsPid === undefined ? 0 : cpuMs(natsPid)
    await push(started)
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

const row = (label: string, value: number, ratio?: number) =>
  console.log(
    `${label.padEnd(48)}${value.toFixed(2).padStart(22)}${ratio === undefined ? "" : `${ratio.toFixed(2)}x`.padStart(17)}`,
  )

const main = async () => {
  const work = mkdtempSync(join(tmpdir(), "bench-push-"))
  try {
    const flv = encodeStream(work)
    const rtpStream = encodeRtpStream(work)
    console.log(
      `bench:push: ${seconds} s of 720p30 H.264 3 Mb/s + AAC (RTMP) / Opus (WHIP), pushed in real time, ${SEGMENT_SECONDS} s segments, load ${loadavg()[0]?.toFixed(1)}`,
    )
    const minutes = seconds / 60
    const perMinute = (ms: number) => ms / 1000 / minutes
    const results: Record<string, unknown> = {}
    for (const source of sources) {
      const alone = source === "rtmp" ? await ffmpegAlone(flv) : undefined
      const run = await capture(source, async (started) => {
        if (source === "rtmp") {
          const published = await publish(flv, stringField(started.rtmp as Record<string, unknown>, "url"))
          if (published.code !== 0)
            throw new Error(`the publisher exited with ${published.code}: ${published.stderr}`)
        } else {
          const url = stringField(started, "whip_url")
          const token = stringField(started, "whip_bearer_token")
          await publishWhip(ffmpeg, rtpStream, url, token, join(work, "whip.sdp"))
        }
      })
      console.log(
        `\n${source.toUpperCase().padEnd(48)}${"CPU s / stream-minute".padStart(22)}${"vs ffmpeg alone".padStart(17)}`,
      )
      if (alone !== undefined) row("ffmpeg alone (RTMP server + segments)", perMinute(alone.cpuMs), 1)
      else console.log("ffmpeg alone: not measured for WHIP (see the module comment)")
      row(
        "capture gateway (node + its ffmpeg)",
        perMinute(run.gatewayCpuMs),
        alone === undefined ? undefined : run.gatewayCpuMs / alone.cpuMs,
      )
      row("  of which its ffmpeg (segments)", perMinute(run.segmenterCpuMs))
      row("  the same gateway idle, for comparison", perMinute(run.idleCpuMs))
      row("nats-server (storing the segments)", perMinute(run.natsCpuMs))
      results[source] = {
        ffmpegAlone: alone === undefined ? null : { ...alone, cpuSecondsPerMinute: perMinute(alone.cpuMs) },
        capture: {
          ...run,
          gatewayCpuSecondsPerMinute: perMinute(run.gatewayCpuMs),
          natsCpuSecondsPerMinute: perMinute(run.natsCpuMs),
          ratio: alone === undefined ? null : run.gatewayCpuMs / alone.cpuMs,
        },
      }
    }
    const file = writeResults("push", {
      date: new Date().toISOString(),
      load: loadavg(),
      seconds,
      segmentSeconds: SEGMENT_SECONDS,
      stream: "1280x720 30 fps H.264 3 Mb/s, AAC 128 kb/s (RTMP) or Opus 128 kb/s (WHIP)",
      target: { gatewayVsFfmpeg: 1.2 },
      ...results,
    })
    console.log(`\nwrote ${file}`)
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
