/**
 * `capture record`: records a session until `--duration` elapses or the user interrupts (first
 * Ctrl-C: stop and upload the rest; second: leave at once, the spool keeps what is not uploaded),
 * with a live progress line on stderr (elapsed time; per channel segments uploaded, spooled and
 * pending, bytes; upload rate; the last error) and a summary per channel at the end.
 */
import { CaptureClient, type CaptureEvents } from "../CaptureClient.js"
import type { Channel } from "../Channels.js"
import { type LastError, progressLine, summaryLines } from "./RecordProgress.js"

/** What `capture record` takes. */
export interface RecordOptions {
  /** The API's base URL (`--server`). */
  readonly server: string
  /** A client token `st-…` (`--token`). */
  readonly token: string
  /** The capture session id `cap-…` (`--session`). */
  readonly session: string
  /**
   * Channel ids (`--channels mic:default,display:1`). Default: the default display, microphone
   * and system audio, those that exist.
   */
  readonly channels?: ReadonlyArray<string>
  /** The display for the muxed video (default: the first display among the channels). */
  readonly primaryVideoChannelId?: string
  /** Synthetic sources instead of devices (`--synthetic`). */
  readonly synthetic?: boolean
  /** Stop after this long, in ms (`--duration 30s`, see `parseDuration`); default: until interrupted. */
  readonly durationMs?: number
  readonly spoolDir?: string
  readonly segmentSeconds?: number
  readonly ffmpegPath?: string
  /** How long the start is retried while the server is unreachable (`--start-retry 5m`; default 5 minutes). */
  readonly startRetryMs?: number
  /** Aborting stops the recording like the first Ctrl-C. When absent, SIGINT/SIGTERM are handled. */
  readonly signal?: AbortSignal
  /** Where the progress line goes (default `process.stderr`). */
  readonly stderr?: NodeJS.WritableStream & { readonly isTTY?: boolean; readonly columns?: number }
  /** How often the progress line is redrawn (default 1 s; without a TTY a line every 5 redraws). */
  readonly progressIntervalMs?: number
}

/** How a recording went. */
export interface RecordSummary {
  readonly sessionId: string
  readonly channels: ReadonlyArray<string>
  /**
   * What ended it: the duration, the user, the server, the user twice (spool left behind), or
   * every stored channel's capture giving up (the session was failed on the server).
   */
  readonly stoppedBy: "duration" | "signal" | "server" | "interrupted" | "capture_failed"
  readonly elapsedMs: number
  readonly uploadedSegments: number
  readonly uploadedBytes: number
  /** Segments still in the spool (a later run with the same session resumes them). */
  readonly pendingSegments: number
  /** `recording:error` events seen. */
  readonly errors: number
}

/** Splits `--channels a,b,c`. */
export const parseChannelList = (text: string): ReadonlyArray<string> =>
  text
    .split(",")
    .map((id) => id.trim())
    .filter((id) => id !== "")

const RATE_WINDOW_MS = 5_000

/** Records a session; resolves when it is stopped and (unless interrupted twice) uploaded. */
export const recordCommand = async (options: RecordOptions): Promise<RecordSummary> => {
  const out = options.stderr ?? process.stderr
  const client = new CaptureClient({
    clientToken: options.token,
    baseUrl: options.server,
    ...(options.spoolDir === undefined ? {} : { spoolDir: options.spoolDir }),
    ...(options.segmentSeconds === undefined ? {} : { segmentSeconds: options.segmentSeconds }),
    ...(options.ffmpegPath === undefined ? {} : { ffmpegPath: options.ffmpegPath }),
    ...(options.synthetic ? { synthetic: true } : {}),
    ...(options.startRetryMs === undefined ? {} : { startRetryMs: options.startRetryMs }),
  })

  let errors = 0
  let lastError: LastError | undefined
  let line = ""
  const print = (text: string) => {
    if (out.isTTY && line !== "") out.write("\r\x1b[K")
    out.write(`${text}\n`)
    line = ""
  }
  client.on("recording:error", ({ channelId, index, error }) => {
    errors += 1
    const where = channelId === undefined ? "" : ` ${channelId}${index === undefined ? "" : `#${index}`}`
    lastError = { where: where.trim() || "session", message: error.message, count: errors }
    print(`recording error${where}: ${error.message}`)
  })
  client.on("error", ({ error }) => print(`error: ${error instanceof Error ? error.message : String(error)}`))

  const channels = await chooseChannels(client, options.channels)
  await client.startCaptureSession({
    sessionId: options.session,
    channels,
    ...(options.primaryVideoChannelId === undefined
      ? {}
      : { primaryVideoChannelId: options.primaryVideoChannelId }),
  })
  const startedAt = Date.now()
  print(`recording ${options.session}: ${channels.map((channel) => channel.id).join(", ")}`)

  const samples: Array<{ readonly at: number; readonly bytes: number }> = []
  let redraws = 0
  const drawProgress = () => {
    const stats = client.uploadStats()
    const now = Date.now()
    samples.push({ at: now, bytes: stats.uploadedBytes })
    while (samples.length > 1 && (samples[0]?.at ?? now) < now - RATE_WINDOW_MS) samples.shift()
    const first = samples[0] ?? { at: now, bytes: stats.uploadedBytes }
    const rate = now > first.at ? ((stats.uploadedBytes - first.bytes) * 1_000) / (now - first.at) : 0
    const text = progressLine(now - startedAt, stats, rate, lastError)
    redraws += 1
    if (out.isTTY) {
      // One screen line, or `\r` would redraw only its last part.
      const columns = out.columns
      const shown = columns !== undefined && text.length >= columns ? `${text.slice(0, columns - 2)}…` : text
      out.write(`\r\x1b[K${shown}`)
      line = shown
    } else if (redraws % 5 === 0) {
      out.write(`${text}\n`)
    }
  }
  const progress = setInterval(drawProgress, options.progressIntervalMs ?? 1_000)

  const stoppedBy = await new Promise<RecordSummary["stoppedBy"]>((resolve) => {
    const cleanups: Array<() => void> = []
    const done = (reason: RecordSummary["stoppedBy"]) => {
      for (const cleanup of cleanups) cleanup()
      resolve(reason)
    }
    const serverEnded = (payload: CaptureEvents["recording:stopped"]) => {
      if (payload.reason === "server_ended") done("server")
      if (payload.reason === "capture_failed") done("capture_failed")
    }
    cleanups.push(client.on("recording:stopped", serverEnded))
    if (options.durationMs !== undefined) {
      const timer = setTimeout(() => done("duration"), options.durationMs)
      cleanups.push(() => clearTimeout(timer))
    }
    if (options.signal !== undefined) {
      const onAbort = () => done("signal")
      if (options.signal.aborted) onAbort()
      options.signal.addEventListener("abort", onAbort, { once: true })
      cleanups.push(() => options.signal?.removeEventListener("abort", onAbort))
    } else {
      const onSignal = () => done("signal")
      process.once("SIGINT", onSignal)
      process.once("SIGTERM", onSignal)
      cleanups.push(() => {
        process.off("SIGINT", onSignal)
        process.off("SIGTERM", onSignal)
      })
    }
  })

  let finalReason = stoppedBy
  if (stoppedBy === "capture_failed") print("capture failed on every stored channel: the session was failed")
  if (stoppedBy !== "server" && stoppedBy !== "capture_failed") {
    print(`stopping (${stoppedBy}): finishing segments and uploading the rest…`)
    const interrupt = () => {
      finalReason = "interrupted"
      print("interrupted: leaving the rest in the spool; run the same command again to upload it")
      void client.shutdown()
    }
    if (options.signal === undefined) process.once("SIGINT", interrupt)
    await client.stopCapture()
    if (options.signal === undefined) process.off("SIGINT", interrupt)
  }
  clearInterval(progress)
  drawProgress()
  await client.shutdown()
  const stats = client.uploadStats()
  for (const summary of summaryLines(Date.now() - startedAt, stats, lastError)) print(summary)
  return {
    sessionId: options.session,
    channels: channels.map((channel) => channel.id),
    stoppedBy: finalReason,
    elapsedMs: Date.now() - startedAt,
    uploadedSegments: stats.uploadedSegments,
    uploadedBytes: stats.uploadedBytes,
    pendingSegments: stats.pendingSegments,
    errors,
  }
}

const chooseChannels = async (
  client: CaptureClient,
  ids: ReadonlyArray<string> | undefined,
): Promise<ReadonlyArray<Channel>> => {
  const listed = await client.listChannels()
  if (ids !== undefined && ids.length > 0) {
    return ids.map((id) => {
      const channel = listed.get(id)
      if (channel === undefined) {
        const known = listed.all().map((candidate) => candidate.id)
        throw new Error(`no channel "${id}" on this machine (found: ${known.join(", ") || "none"})`)
      }
      return channel
    })
  }
  const defaults = [listed.displays.default, listed.mics.default, listed.systemAudio.default].filter(
    (channel): channel is Channel => channel !== undefined,
  )
  if (defaults.length === 0) {
    throw new Error("no capture devices found (no X display, no PulseAudio source); try --synthetic")
  }
  return defaults
}
