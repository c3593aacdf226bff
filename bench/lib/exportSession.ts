/**
 * What bench:export and bench:cost share: a session through `capture serve`'s API and ingest route
 * as a recorder makes it (segments PUT with the recorder's headers, events on a WebSocket), the CPU
 * of the server, its ffmpeg runs and nats-server read from /proc, an export read back with ffprobe,
 * and the baseline: one ffmpeg run muxing the same segments.
 */
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { segmentPath } from "@capture/protocol"
import { resolveFfmpeg, resolveFfprobe } from "@capture/recorder/Ffmpeg"
import { AAC_PRIMING_MS } from "@capture/recorder/FfmpegInputs"
import { foldSecond } from "@capture/testkit"
import { AckPolicy, DeliverPolicy, jetstreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/transport-node"
import { measureAvSync, type SyncResult } from "./avSync.js"
import type { CaptureServer } from "./captureServer.js"
import { openCollectionSocket } from "./collectionSocket.js"
import type { JsonClient } from "./jsonClient.js"
import { cpuMs, descendants, reapedChildrenCpuMs, treeCpuMs } from "./processCpu.js"
import type { SegmentClient } from "./segmentClient.js"
import type { RecordedChannel, RecordedSegment, SyntheticRecording } from "./syntheticRecording.js"

/** The reference recording: 5 min of this took 5.7 s to mux in one shot. */
export const VIDEO = { width: 1280, height: 720, frameRate: 15 } as const
/** What the muxer's incremental consumer is called (muxer.md: `<prefix>-muxer-media` on `CAPTURE_MEDIA`). */
export const MEDIA_STREAM = "CAPTURE_MEDIA"
export const MEDIA_CONSUMER = "capture-muxer-media"
export const PIECES_STREAM = "CAPTURE_MUXER"

export const ffmpeg = resolveFfmpeg()
export const ffprobe = resolveFfprobe(undefined, ffmpeg)

/** CPU seconds of the processes under test. */
export interface CpuSeconds {
  /** The `capture serve` process itself (gateway, ingest, muxer's own work). */
  readonly serve: number
  /** The ffmpeg runs it started (remux, mix, fill, probe). */
  readonly ffmpeg: number
  readonly nats: number
  readonly total: number
}

/** What ffprobe read back from an MP4. */
export interface Validation {
  readonly ok: boolean
  readonly problems: ReadonlyArray<string>
  readonly durationSeconds: number
  readonly streams: ReadonlyArray<{ readonly type: string; readonly codec: string; readonly packets: number }>
  readonly metadataDurationMs?: number
  readonly gaps?: number
}

/** The one-shot mux of the same media. */
export interface OneShot {
  readonly seconds: number
  readonly cpuSeconds: number
  readonly megabytes: number
  readonly validation: Validation
}

/** A WebSocket named on the session, resolving each `capture_session.*` event someone waits for. */
export const openEventSocket = async (client: JsonClient) => {
  const seen = new Map<string, { at: number; message: Record<string, unknown> }>()
  const waiting = new Map<string, (seen: { at: number; message: Record<string, unknown> }) => void>()
  const { socket, connectionId } = await openCollectionSocket(client, (message, at) => {
    if (message.channel !== "capture_session") return
    const key = `${message.capture_session_id} ${message.event}`
    const entry = { at, message }
    seen.set(key, entry)
    waiting.get(key)?.(entry)
  })
  return {
    connectionId,
    /** Resolves when `event` of `sessionId` arrives (or has), or `capture_session.failed` does. */
    next: (sessionId: string, event: string, timeoutMs: number) =>
      new Promise<{ at: number; message: Record<string, unknown> }>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no ${event} for ${sessionId} within ${timeoutMs} ms`)),
          timeoutMs,
        )
        const done = (entry: { at: number; message: Record<string, unknown> }) => {
          clearTimeout(timer)
          waiting.delete(`${sessionId} ${event}`)
          waiting.delete(`${sessionId} capture_session.failed`)
          if (entry.message.event === "capture_session.failed")
            reject(new Error(`session failed: ${JSON.stringify(entry.message.data)}`))
          else resolve(entry)
        }
        const already = seen.get(`${sessionId} ${event}`) ?? seen.get(`${sessionId} capture_session.failed`)
        if (already !== undefined) return done(already)
        waiting.set(`${sessionId} ${event}`, done)
        waiting.set(`${sessionId} capture_session.failed`, done)
      }),
    close: () => socket.close(),
  }
}

/** PUTs segments through the ingest route as the recorder's IngestClient does, retrying what it retries. */
export const makeUploader =
  (client: SegmentClient) =>
  async (
    sessionId: string,
    channelId: string,
    segment: RecordedSegment,
    firstSampleMs: number,
    final: boolean,
  ): Promise<number> => {
    const body = readFileSync(segment.file)
    const path = segmentPath(sessionId, channelId, segment.index)
    const headers = {
      "x-segment-start-ms": String(firstSampleMs + segment.offsetMs),
      "x-segment-duration-ms": String(segment.durationMs),
      "x-segment-sha256": createHash("sha256").update(body).digest("hex"),
      ...(final ? { "x-segment-final": "1" } : {}),
    }
    for (let attempt = 1; ; attempt++) {
      const answer = await client
        .put(path, body, headers)
        .catch((error: unknown) => ({ status: 0, body: { error: String(error) } }))
      if (answer.status === 200) return body.length
      // No answer, 429 and 5xx are worth another try (the recorder backs off and retries them).
      const retryable = answer.status === 0 || answer.status === 429 || answer.status >= 500
      if (!retryable || attempt >= 5)
        throw new Error(
          `PUT ${channelId}/${segment.index} answered ${answer.status}: ${JSON.stringify(answer.body)}`,
        )
      await new Promise((resolve) => setTimeout(resolve, 500 * attempt))
    }
  }

/** Waits until the muxer's media consumer has nothing pending or unacknowledged. */
export const muxerCaughtUp = async (nc: NatsConnection, timeoutMs: number): Promise<void> => {
  const jsm = await jetstreamManager(nc)
  const deadline = Date.now() + timeoutMs
  let reported = Date.now()
  for (;;) {
    const info = await jsm.consumers.info(MEDIA_STREAM, MEDIA_CONSUMER)
    const left = info.num_pending + info.num_ack_pending
    if (left === 0) return
    if (Date.now() > deadline)
      throw new Error(`the muxer still had ${left} segment records after ${timeoutMs} ms`)
    if (Date.now() - reported > 30_000) {
      reported = Date.now()
      console.log(`  … muxer: ${left} segment records to go`)
    }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

/** How many pieces the session's index holds, in all and stored from `since` on. */
export const countPieces = async (nc: NatsConnection, sessionId: string, since: string) => {
  const jsm = await jetstreamManager(nc)
  const count = async (from: { deliver_policy: DeliverPolicy; opt_start_time?: string }) => {
    const info = await jsm.consumers.add(PIECES_STREAM, {
      ...from,
      filter_subject: `capture.muxer.pieces.${sessionId}`,
      ack_policy: AckPolicy.None,
      inactive_threshold: 10_000_000_000,
    })
    await jsm.consumers.delete(PIECES_STREAM, info.name).catch(() => undefined)
    return info.num_pending
  }
  return {
    pieces: await count({ deliver_policy: DeliverPolicy.All }),
    afterStop: await count({ deliver_policy: DeliverPolicy.StartTime, opt_start_time: since }),
  }
}

/** Runs a tool to completion, returning its stdout. */
export const runTool = (bin: string, args: ReadonlyArray<string>, cwd?: string) =>
  new Promise<string>((resolve, reject) => {
    const child = spawn(bin, args, { cwd, stdio: ["ignore", "pipe", "pipe"] })
    const out: Array<Buffer> = []
    let err = ""
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk))
    child.stderr.on("data", (chunk: Buffer) => {
      err = (err + chunk.toString("utf8")).slice(-2_000)
    })
    child.once("error", reject)
    child.once("exit", (code, signal) =>
      code === 0
        ? resolve(Buffer.concat(out).toString("utf8"))
        : reject(new Error(`${bin} exited with ${code ?? signal}: ${err.trim()}`)),
    )
  })

/**
 * Reads `input` (a file or URL) through with ffprobe: its duration, and every stream's packets
 * counted, checked against a recording of `minutes` (video and audio, ±2% and a second).
 */
export const validate = async (input: string, minutes: number): Promise<Validation> => {
  const json = JSON.parse(
    await runTool(ffprobe, [
      ...["-v", "error", "-count_packets", "-of", "json"],
      ...["-show_entries", "format=duration:stream=codec_type,codec_name,nb_read_packets", input],
    ]),
  ) as {
    format?: { duration?: string }
    streams?: Array<{ codec_type?: string; codec_name?: string; nb_read_packets?: string }>
  }
  const durationSeconds = Number(json.format?.duration ?? Number.NaN)
  const streams = (json.streams ?? []).map((s) => ({
    type: s.codec_type ?? "?",
    codec: s.codec_name ?? "?",
    packets: Number(s.nb_read_packets ?? 0),
  }))
  const expected = minutes * 60
  const near = (value: number, target: number) => Math.abs(value - target) <= target * 0.02 + 1
  const problems: Array<string> = []
  if (!near(durationSeconds, expected))
    problems.push(`duration ${durationSeconds} s, expected ~${expected} s`)
  const video = streams.find((s) => s.type === "video")
  const audio = streams.find((s) => s.type === "audio")
  if (video === undefined || !near(video.packets / VIDEO.frameRate, expected))
    problems.push(`video: ${video?.packets ?? 0} frames, expected ~${expected * VIDEO.frameRate}`)
  // AAC: 1024 samples a packet at 48 kHz.
  if (audio === undefined || !near((audio.packets * 1024) / 48_000, expected))
    problems.push(
      `audio: ${audio?.packets ?? 0} packets, expected ~${Math.round((expected * 48_000) / 1024)}`,
    )
  if (streams.length !== 2) problems.push(`${streams.length} streams, expected video + mixed audio`)
  return { ok: problems.length === 0, problems, durationSeconds, streams }
}

/**
 * A/V sync of the export at its start and end. Each channel's first sample is the start sent for
 * its segment 0 (first sample + the segment list's start) plus, for AAC, the encoder's priming
 * frame; a tone's beeps should follow the display's flashes by the difference, modulo a second.
 */
export const measureExportSync = (
  input: string,
  durationSeconds: number,
  recording: SyntheticRecording,
): Promise<SyncResult> => {
  const firstSample = (channel: RecordedChannel) =>
    (channel.segments[0]?.offsetMs ?? Number.NaN) + (channel.type === "audio" ? AAC_PRIMING_MS : 0)
  const display = recording.channels.find((c) => c.channelId === "display:1")
  if (display === undefined) throw new Error("the recording has no display:1")
  return measureAvSync({
    ffmpeg,
    input,
    durationSeconds,
    frameRate: VIDEO.frameRate,
    tones: recording.channels.flatMap((c) =>
      c.beepHz === undefined
        ? []
        : [
            {
              channelId: c.channelId,
              beepHz: c.beepHz,
              expected: foldSecond((firstSample(c) - firstSample(display)) / 1000),
            },
          ],
    ),
  })
}

/**
 * The CPU ms of `capture serve`, of the ffmpeg runs it started (done or not), and of nats-server,
 * now. `others`: further `capture serve` processes of the same run, left out of nats-server's.
 */
export const cpuNow = (server: CaptureServer, others: ReadonlyArray<CaptureServer> = []) => {
  const serverTree = new Set([server, ...others].flatMap((s) => [s.pid, ...descendants(s.pid)]))
  const nats = descendants(process.pid).filter((pid) => !serverTree.has(pid))
  const serve = cpuMs(server.pid)
  return {
    serve,
    ffmpeg: treeCpuMs(server.pid) - serve,
    nats: nats.reduce((sum, pid) => sum + treeCpuMs(pid), 0),
  }
}

export const cpuSince = (before: ReturnType<typeof cpuNow>, after: ReturnType<typeof cpuNow>): CpuSeconds => {
  const serve = (after.serve - before.serve) / 1000
  const ffmpeg = (after.ffmpeg - before.ffmpeg) / 1000
  const nats = (after.nats - before.nats) / 1000
  return { serve, ffmpeg, nats, total: serve + ffmpeg + nats }
}

// --- the baseline: one ffmpeg run over the same segments -------------------------------------

export const oneShotMux = async (recording: SyntheticRecording): Promise<OneShot> => {
  const work = mkdtempSync(join(tmpdir(), "capture-bench-oneshot-"))
  try {
    const lists = recording.channels.map((channel) => {
      const list = join(work, `${channel.channelId.replace(/[^a-z0-9]/gi, "_")}.txt`)
      writeFileSync(list, channel.segments.map((s) => `file '${s.file.replaceAll("'", "'\\''")}'\n`).join(""))
      return list
    })
    const output = join(work, "video.mp4")
    const args = [
      ...["-hide_banner", "-nostats", "-loglevel", "error", "-y"],
      ...lists.flatMap((list) => ["-f", "concat", "-safe", "0", "-i", list]),
      // The export's mix: every audio channel summed without normalisation, AAC 48 kHz stereo.
      ...["-filter_complex", "[1:a][2:a]amix=inputs=2:normalize=0:duration=longest[a]"],
      ...["-map", "0:v:0", "-map", "[a]", "-c:v", "copy"],
      ...["-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2", output],
    ]
    // ffmpeg is this process's child: its CPU shows in our reaped-children time once it exits.
    const cpuBefore = reapedChildrenCpuMs(process.pid)
    const started = performance.now()
    await runTool(ffmpeg, args)
    const seconds = (performance.now() - started) / 1000
    const cpuSeconds = (reapedChildrenCpuMs(process.pid) - cpuBefore) / 1000
    return {
      seconds,
      cpuSeconds,
      megabytes: statSync(output).size / 1e6,
      validation: await validate(output, recording.minutes),
    }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}
