/**
 * The desktop capture client, shaped like VideoDB's: list the channels, start a capture session
 * with some of them, stop it. Each channel is captured by its own ffmpeg into ~2 s MPEG-TS
 * segments in a spool folder and uploaded in order, each segment until the server acknowledges it.
 *
 * @example
 * ```ts
 * const client = new CaptureClient({ clientToken: "st-…", baseUrl: "https://capture.example" })
 * const channels = await client.listChannels()
 * await client.startCaptureSession({
 *   sessionId: "cap-…",
 *   channels: [channels.mics.default!, channels.displays.default!],
 *   primaryVideoChannelId: channels.displays.default!.id,
 * })
 * // …
 * await client.stopCapture()
 * await client.shutdown()
 * ```
 *
 * A channel whose ffmpeg stops by itself or cannot start is started again a second later
 * (`recording:error` for each failure), until it has failed `restart.maxFailures` times within
 * `restart.windowMs`; then it gives up. Once every stored channel has given up, the recorder tells
 * the server (`POST /capture/session/{id}/fail`, code `capture_failed`): the session fails with
 * that reason, and the client ends (`recording:stopped` with reason `capture_failed`).
 *
 * Resuming: a recorder that died leaves its spool behind. Calling `startCaptureSession` with the
 * same session id (and spool folder) again uploads what is left and carries on recording at the
 * next index of each channel; the server's 409 "already active" answer to the start is expected
 * there. Nothing acknowledged is sent again: a segment leaves the spool only after its ack.
 */
import { homedir } from "node:os"
import { join, sep } from "node:path"
import { CAPTURE_FAILED, type StartSessionRequest } from "@capture/protocol"
import { Data, Effect, Exit } from "effect"
import { checkPermission, discoverChannels, type Permission, syntheticChannels } from "./ChannelDiscovery.js"
import { type Channel, type ChannelControl, type Channels, makeChannels } from "./Channels.js"
import { canDrawText, resolveFfmpeg, resolveFfprobe } from "./Ffmpeg.js"
import { type CaptureSettings, defaultCaptureSettings, type SyntheticVideo } from "./FfmpegInputs.js"
import {
  HttpError,
  IngestClient,
  type IngestError,
  isAlreadyStarted,
  isRecordedAfterStop,
  isRetryable,
  isSessionEnded,
  NetworkError,
} from "./IngestClient.js"
import {
  CaptureFailed,
  ChannelCapture,
  defaultRestartPolicy,
  type RestartPolicy,
} from "./internal/channelCapture.js"
import { ChannelUploader, type RetryOptions, retrySchedule } from "./internal/channelUploader.js"
import { stopStaleProcesses } from "./internal/ffmpegRun.js"
import { PauseReports } from "./internal/pauseReports.js"
import { type SegmentRecord, type SessionFile, SessionSpool } from "./Spool.js"
import { TypedEmitter } from "./TypedEmitter.js"

export { CaptureFailed, type RestartPolicy } from "./internal/channelCapture.js"

/** How to reach the server, where to spool, how to capture. */
export interface CaptureClientOptions {
  /** A client token (`st-…`), sent as `x-access-token`. */
  readonly clientToken: string
  /** The API's base URL, e.g. `https://capture.example` (paths are appended). */
  readonly baseUrl: string
  /** Where segments wait for upload (default `~/.capture/spool`). */
  readonly spoolDir?: string
  /** Segment length in seconds (default 2). */
  readonly segmentSeconds?: number
  /** The ffmpeg binary (default: `FFMPEG_PATH`, ffmpeg-static, `ffmpeg` on PATH). */
  readonly ffmpegPath?: string
  /** The ffprobe binary (default: `FFPROBE_PATH`, ffprobe-static, beside ffmpeg, on PATH). */
  readonly ffprobePath?: string
  /**
   * Synthetic channels instead of devices: `listChannels()` offers a test pattern as `display:1`
   * and tones as `mic:default` and `system_audio:default`. An object sets the pattern's geometry.
   */
  readonly synthetic?: boolean | Partial<SyntheticVideo>
  /** Frame rate of screen and camera capture (default 30). */
  readonly frameRate?: number
  /** The environment of discovery tools and ffmpeg (default `process.env`). */
  readonly env?: NodeJS.ProcessEnv
  /** Upload tuning: retry backoff bounds (default 250 ms … 10 s) and request timeout (30 s). */
  readonly upload?: {
    readonly baseDelayMs?: number
    readonly maxDelayMs?: number
    readonly requestTimeoutMs?: number
  }
  /**
   * When a channel whose ffmpeg failed is started again, and when it gives up (default: a second
   * later, until 5 failures within 60 s).
   */
  readonly restart?: Partial<RestartPolicy>
  /**
   * How long `startCaptureSession` keeps asking the server to start (or resume) the session while
   * it is unreachable or answers 408/429/5xx, with the upload backoff between tries (each try is a
   * `recording:error`); default 5 minutes. A recorder resumed on its spool after a crash must outlast
   * a server outage rather than give up with its segments still spooled.
   */
  readonly startRetryMs?: number
}

/** Default of `CaptureClientOptions.startRetryMs`. */
export const DEFAULT_START_RETRY_MS = 300_000

/** What `startCaptureSession` takes: channels as objects from `listChannels()` or by id. */
export interface StartCaptureSessionOptions {
  readonly sessionId: string
  readonly channels: ReadonlyArray<Channel | string>
  /** The display for the muxed video (default: the primary-flagged video channel, else the first). */
  readonly primaryVideoChannelId?: string
}

/** A request the client cannot act on (unknown channel, no channels, already recording, …). */
export class InvalidCaptureRequest extends Data.TaggedError("InvalidCaptureRequest")<{
  readonly message: string
}> {}

/** The server has ended this session (stopped, exported or failed); it takes no more media. */
export class SessionEnded extends Data.TaggedError("SessionEnded")<{
  readonly sessionId: string
  readonly status: string
  readonly message: string
}> {}

/** Every stored channel's capture gave up: the recorder failed the session on the server. */
export class CaptureGaveUp extends Data.TaggedError("CaptureGaveUp")<{
  readonly sessionId: string
  /** The channels that gave up. */
  readonly channelIds: ReadonlyArray<string>
  /** What the session's `error.message` says: each channel's last failure. */
  readonly message: string
}> {}

/** Errors reported through `recording:error`. */
export type RecorderError = CaptureFailed | CaptureGaveUp | IngestError | SessionEnded

/** Upload counters, per channel and in total. */
export interface UploadStats {
  readonly uploadedSegments: number
  readonly pendingSegments: number
  readonly uploadedBytes: number
  /** Retryable failures seen so far (each was retried). */
  readonly retries: number
  readonly channels: Readonly<
    Record<string, { readonly uploaded: number; readonly pending: number; readonly bytes: number }>
  >
}

/** The client's events and their payloads. */
export interface CaptureEvents {
  /** Every channel is capturing. `resumed`: an existing spool of this session was picked up. */
  readonly "recording:started": {
    readonly sessionId: string
    readonly channels: ReadonlyArray<string>
    readonly resumed: boolean
  }
  /**
   * Capture ended: asked to (`stopped`, everything uploaded and the server told), the server ended
   * it (`server_ended`), or every stored channel gave up and the session was failed (`capture_failed`).
   */
  readonly "recording:stopped": {
    readonly sessionId: string
    readonly reason: "stopped" | "server_ended" | "capture_failed"
    readonly currentStatus?: string
  }
  /**
   * A channel's ffmpeg failed (`CaptureFailed`), every stored channel gave up (`CaptureGaveUp`),
   * or an upload gave up (the segments stay in the spool).
   */
  readonly "recording:error": {
    readonly sessionId: string
    readonly channelId?: string
    readonly index?: number
    readonly error: RecorderError
  }
  /** A segment was acknowledged by the server. */
  readonly "upload:progress": {
    readonly sessionId: string
    readonly channelId: string
    readonly index: number
    readonly bytes: number
    readonly durationMs: number
    readonly duplicate: boolean
    readonly final: boolean
  } & UploadStats
  /** After `stopCapture()`: every segment of the session is on the server. */
  readonly "upload:complete": { readonly sessionId: string } & UploadStats
  /** Something went wrong outside a recording (a throwing listener, a failed clean-up). */
  readonly error: { readonly error: unknown }
  /** `shutdown()` finished. */
  readonly shutdown: { readonly sessionId?: string }
}

/** The client's lifecycle. */
export type CaptureState = "idle" | "starting" | "recording" | "stopping" | "stopped" | "ended" | "shutdown"

interface ChannelPipeline {
  readonly channelId: string
  readonly uploader: ChannelUploader
  readonly capture?: ChannelCapture
  readonly channel?: Channel
}

interface ActiveSession {
  readonly sessionId: string
  readonly spool: SessionSpool
  readonly client: IngestClient
  readonly pipelines: ReadonlyArray<ChannelPipeline>
  readonly pauses: PauseReports
}

const defaultSpoolDir = (): string => join(homedir(), ".capture", "spool")

/** The desktop capture client. */
export class CaptureClient {
  readonly #options: CaptureClientOptions
  readonly #events: TypedEmitter<CaptureEvents>
  #state: CaptureState = "idle"
  #session: ActiveSession | undefined
  #channels = new Map<string, Channel>()
  #retries = 0

  constructor(options: CaptureClientOptions) {
    if (!options.clientToken) throw new InvalidCaptureRequest({ message: "clientToken is required" })
    if (!/^https?:\/\//.test(options.baseUrl)) {
      throw new InvalidCaptureRequest({ message: `baseUrl must be an http(s) URL: "${options.baseUrl}"` })
    }
    this.#options = options
    this.#events = new TypedEmitter<CaptureEvents>((error, event) => {
      if (event !== "error") this.#events.emit("error", { error })
    })
  }

  /** Adds a listener; returns a function removing it. */
  on<K extends keyof CaptureEvents>(event: K, listener: (payload: CaptureEvents[K]) => void): () => void {
    return this.#events.on(event, listener)
  }
  /** Adds a listener for the next `event` only. */
  once<K extends keyof CaptureEvents>(event: K, listener: (payload: CaptureEvents[K]) => void): () => void {
    return this.#events.once(event, listener)
  }
  /** Removes a listener. */
  off<K extends keyof CaptureEvents>(event: K, listener: (payload: CaptureEvents[K]) => void): void {
    this.#events.off(event, listener)
  }
  /** Resolves with the next `event`. */
  next<K extends keyof CaptureEvents>(event: K): Promise<CaptureEvents[K]> {
    return this.#events.next(event)
  }

  /** Where the client is in its lifecycle. */
  get state(): CaptureState {
    return this.#state
  }

  /** The spool folder. */
  get spoolDir(): string {
    return this.#options.spoolDir ?? defaultSpoolDir()
  }

  /**
   * Checks that the devices behind a permission are reachable (Linux: an X display for
   * `screen_capture`, a PulseAudio server for `microphone`; macOS and Windows prompt on first use).
   * Rejects with `PermissionDenied` saying what is missing.
   */
  async requestPermission(permission: Permission): Promise<"granted"> {
    if (!this.#options.synthetic) {
      await checkPermission(permission, {
        ...(this.#options.env === undefined ? {} : { env: this.#options.env }),
      })
    }
    return "granted"
  }

  /**
   * The channels of this machine (or the synthetic ones), grouped by kind. The same id gives the
   * same `Channel` object on every call, so `store` and `isPrimary` set on it stick.
   */
  async listChannels(): Promise<Channels> {
    const found = this.#options.synthetic
      ? syntheticChannels()
      : await discoverChannels({
          ...(this.#options.env === undefined ? {} : { env: this.#options.env }),
          ...(this.#options.ffmpegPath === undefined ? {} : { ffmpegPath: this.#options.ffmpegPath }),
        })
    const keep = (channels: ReadonlyArray<Channel>) =>
      channels.map((channel) => {
        const known = this.#channels.get(channel.id)
        if (known !== undefined) return known
        this.#channels.set(channel.id, channel)
        return channel
      })
    return makeChannels({
      mics: keep(found.mics.all()),
      displays: keep(found.displays.all()),
      systemAudio: keep(found.systemAudio.all()),
      cameras: keep(found.cameras.all()),
    })
  }

  /** Upload counters of the current (or last) session. */
  uploadStats(): UploadStats {
    const pipelines = this.#session?.pipelines ?? []
    const channels: Record<string, { uploaded: number; pending: number; bytes: number }> = {}
    let uploadedSegments = 0
    let pendingSegments = 0
    let uploadedBytes = 0
    for (const { channelId, uploader } of pipelines) {
      channels[channelId] = {
        uploaded: uploader.uploaded,
        pending: uploader.pending,
        bytes: uploader.uploadedBytes,
      }
      uploadedSegments += uploader.uploaded
      pendingSegments += uploader.pending
      uploadedBytes += uploader.uploadedBytes
    }
    return { uploadedSegments, pendingSegments, uploadedBytes, retries: this.#retries, channels }
  }

  /**
   * Starts the session on the server (`POST /capture/session/start`) and captures every channel
   * that is not paused. On an existing spool of the same session it resumes (see the module doc).
   */
  async startCaptureSession(options: StartCaptureSessionOptions): Promise<void> {
    if (this.#state === "starting" || this.#state === "recording" || this.#state === "stopping") {
      throw new InvalidCaptureRequest({ message: `a capture session is already ${this.#state}` })
    }
    if (this.#state === "shutdown") throw new InvalidCaptureRequest({ message: "the client was shut down" })
    this.#state = "starting"
    this.#retries = 0
    let session: ActiveSession | undefined
    let pauses: PauseReports | undefined
    try {
      const channels = await this.#resolveChannels(options)
      const ffmpegPath = resolveFfmpeg(this.#options.ffmpegPath)
      const ffprobePath = resolveFfprobe(this.#options.ffprobePath, ffmpegPath)
      const settings = await this.#settings(ffmpegPath, channels)
      const spool = new SessionSpool(this.spoolDir, options.sessionId)
      const existing = await spool.readSession()
      if (existing?.status === "ended") {
        throw this.#ended(options.sessionId, existing.server_status ?? "stopped")
      }
      const client = new IngestClient({
        baseUrl: this.#options.baseUrl,
        clientToken: this.#options.clientToken,
        ...(this.#options.upload?.requestTimeoutMs === undefined
          ? {}
          : { requestTimeoutMs: this.#options.upload.requestTimeoutMs }),
      })

      const ids = [...new Set([...(await spool.channelIds()), ...channels.map((channel) => channel.id)])]
      for (const id of ids) {
        const channelSpool = spool.channel(id)
        await stopStaleProcesses(channelSpool.pidPath, `${channelSpool.dir}${sep}`)
      }

      const primary = channels.find((channel) => channel.isPrimary)
      const body = {
        session_id: options.sessionId,
        channels: channels.map((channel) => channel.toWire()),
        ...(primary === undefined ? {} : { primary_video_channel_id: primary.id }),
      }
      const resumed = (await this.#startOnServer(client, spool, existing, body)) || existing !== undefined
      const retry: RetryOptions = {
        baseDelayMs: this.#options.upload?.baseDelayMs ?? 250,
        maxDelayMs: this.#options.upload?.maxDelayMs ?? 10_000,
      }
      // Pauses a previous recorder of this session left unsent go first.
      pauses = await PauseReports.open(spool, client, retry, {
        onRetry: () => {
          this.#retries += 1
        },
        onRefused: (report, error) =>
          this.#events.emit("recording:error", {
            sessionId: options.sessionId,
            channelId: report.channel_id,
            error,
          }),
        onSessionEnded: (error) => void this.#serverEnded(error.currentStatus ?? "stopped"),
      })
      pauses.start()
      await spool.writeSession({
        session_id: options.sessionId,
        base_url: this.#options.baseUrl,
        status: "recording",
        ...(primary === undefined ? {} : { primary_video_channel_id: primary.id }),
        channels: body.channels,
      })

      const context = { ffmpegPath, ffprobePath, settings, env: this.#options.env ?? process.env }
      const restart = { ...defaultRestartPolicy, ...this.#options.restart }
      const pipelines: ChannelPipeline[] = []
      for (const id of ids) {
        const channelSpool = spool.channel(id)
        const recovered = await channelSpool.recover(ffprobePath)
        const uploader = new ChannelUploader(channelSpool, client, recovered.ackedThrough, retry, {
          onUploaded: (record, ack, final) =>
            this.#onUploaded(options.sessionId, record, ack.duplicate, final),
          onRetry: () => {
            this.#retries += 1
          },
          onFailed: (record, error) => this.#onUploadFailed(options.sessionId, record, error),
        })
        for (const record of recovered.records) uploader.add(record)
        const channel = channels.find((candidate) => candidate.id === id)
        const capture =
          channel === undefined
            ? undefined
            : new ChannelCapture(
                channel,
                channelSpool,
                recovered.nextIndex,
                context,
                {
                  onSegment: (record) => uploader.add(record),
                  onOpened: (index) => uploader.opened(index),
                  onFailed: (error) =>
                    this.#events.emit("recording:error", {
                      sessionId: options.sessionId,
                      channelId: id,
                      error,
                    }),
                  onGaveUp: () => this.#checkCapture(),
                },
                restart,
              )
        pipelines.push({
          channelId: id,
          uploader,
          ...(capture === undefined ? {} : { capture }),
          ...(channel === undefined ? {} : { channel }),
        })
      }
      session = { sessionId: options.sessionId, spool, client, pipelines, pauses }
      this.#session = session

      // A channel that cannot start was reported (`recording:error`) and is retried on its own.
      await Promise.all(
        pipelines.map((pipeline) =>
          pipeline.channel?.paused ? Promise.resolve() : pipeline.capture?.start().catch(ignoreCaptureFailed),
        ),
      )
      for (const pipeline of pipelines) {
        if (pipeline.channel !== undefined && pipeline.capture !== undefined) {
          pipeline.channel.attach(this.#control(pipeline.channel, pipeline.capture, session))
        }
      }
      // The server learns which channels start paused, and what changed while no recorder ran.
      for (const { channel, capture } of pipelines) {
        if (channel === undefined || capture === undefined) continue
        if (channel.paused && !pauses.isPaused(channel.id))
          await pauses.report("pause", channel.id, Date.now())
        if (!channel.paused && pauses.isPaused(channel.id))
          await pauses.report("resume", channel.id, capture.runStartMs ?? Date.now())
      }
      this.#state = "recording"
      this.#events.emit("recording:started", {
        sessionId: options.sessionId,
        channels: channels.map((channel) => channel.id),
        resumed,
      })
      this.#checkCapture()
    } catch (error) {
      pauses?.abort()
      if (session !== undefined) {
        for (const pipeline of session.pipelines) pipeline.uploader.abort()
        await Promise.all(session.pipelines.map((pipeline) => pipeline.capture?.stop()))
      }
      this.#state = "idle"
      throw error
    }
  }

  /**
   * Stops capturing (each ffmpeg finishes its segment), uploads every segment left (the last of
   * each channel flagged final) and every pause not yet answered, then tells the server
   * (`POST /capture/session/{id}/stop`). The spool folder of the session is deleted once everything
   * is acknowledged. No-op unless recording.
   */
  async stopCapture(): Promise<void> {
    const session = this.#session
    if (this.#state !== "recording" || session === undefined) return
    this.#state = "stopping"
    await Promise.all(session.pipelines.map((pipeline) => pipeline.capture?.stop()))
    for (const pipeline of session.pipelines) pipeline.channel?.attach(undefined)
    if (this.#state !== "stopping") return
    for (const pipeline of session.pipelines) pipeline.uploader.finish()
    const outcomes = await Promise.all(session.pipelines.map((pipeline) => pipeline.uploader.done))
    // A resume the server has not heard of would leave the rest of the recording paused there.
    await session.pauses.settled()
    if (this.#state !== "stopping") return
    try {
      await this.#withRetry(() => session.client.stopSession(session.sessionId))
    } catch (error) {
      if (!(isIngestError(error) && isSessionEnded(error))) {
        const recorderError = isIngestError(error)
          ? error
          : new NetworkError({ message: `stop: ${String(error)}`, cause: error })
        this.#events.emit("recording:error", { sessionId: session.sessionId, error: recorderError })
      }
    }
    const drained = outcomes.every((outcome) => outcome === "drained") && session.pauses.pending.length === 0
    if (drained) {
      try {
        await session.spool.remove()
      } catch (error) {
        this.#events.emit("error", { error })
      }
    }
    this.#state = "stopped"
    if (drained) this.#events.emit("upload:complete", { sessionId: session.sessionId, ...this.uploadStats() })
    this.#events.emit("recording:stopped", { sessionId: session.sessionId, reason: "stopped" })
  }

  /**
   * Releases everything: capture stops (segments complete), uploads in flight are cancelled, and
   * the spool is left as it is, so a later `startCaptureSession` with the same id resumes.
   */
  async shutdown(): Promise<void> {
    if (this.#state === "shutdown") return
    this.#state = "shutdown"
    const session = this.#session
    if (session !== undefined) {
      session.pauses.abort()
      for (const pipeline of session.pipelines) {
        pipeline.uploader.abort()
        pipeline.channel?.attach(undefined)
      }
      await Promise.all(session.pipelines.map((pipeline) => pipeline.capture?.stop()))
    }
    this.#events.emit("shutdown", session === undefined ? {} : { sessionId: session.sessionId })
  }

  /**
   * `POST /capture/session/start`. Resolves true when the server already had the session running
   * (409 starting/active: a restarted recorder carries on); a session the server ended is marked
   * ended in the spool and refused with `SessionEnded`.
   */
  async #startOnServer(
    client: IngestClient,
    spool: SessionSpool,
    existing: SessionFile | undefined,
    body: typeof StartSessionRequest.Encoded,
  ): Promise<boolean> {
    try {
      await this.#untilStarted(() => client.startSession(body), body.session_id)
      return false
    } catch (error) {
      if (isIngestError(error) && isAlreadyStarted(error)) return true
      if (isIngestError(error) && isSessionEnded(error)) {
        const status = error.currentStatus ?? "stopped"
        if (existing !== undefined)
          await spool.writeSession({ ...existing, status: "ended", server_status: status })
        throw this.#ended(body.session_id, status)
      }
      throw error
    }
  }

  async #resolveChannels(options: StartCaptureSessionOptions): Promise<ReadonlyArray<Channel>> {
    if (!/^[A-Za-z0-9_-]{1,128}$/.test(options.sessionId)) {
      throw new InvalidCaptureRequest({ message: `invalid session id: "${options.sessionId}"` })
    }
    if (options.channels.length === 0) throw new InvalidCaptureRequest({ message: "no channels to capture" })
    const needsLookup = options.channels.some((channel) => typeof channel === "string")
    const listed = needsLookup ? await this.listChannels() : undefined
    const channels = options.channels.map((channel) => {
      if (typeof channel !== "string") return channel
      const found = listed?.get(channel)
      if (found === undefined) {
        const known = listed?.all().map((candidate) => candidate.id) ?? []
        throw new InvalidCaptureRequest({
          message: `no channel "${channel}" on this machine (found: ${known.join(", ") || "none"})`,
        })
      }
      return found
    })
    const ids = channels.map((channel) => channel.id)
    const duplicate = ids.find((id, position) => ids.indexOf(id) !== position)
    if (duplicate !== undefined)
      throw new InvalidCaptureRequest({ message: `channel "${duplicate}" listed twice` })
    const videos = channels.filter((channel) => channel.type === "video")
    const primary =
      options.primaryVideoChannelId === undefined
        ? (videos.find((channel) => channel.isPrimary) ?? videos[0])
        : videos.find((channel) => channel.id === options.primaryVideoChannelId)
    if (options.primaryVideoChannelId !== undefined && primary === undefined) {
      throw new InvalidCaptureRequest({
        message: `primaryVideoChannelId "${options.primaryVideoChannelId}" is not a video channel of this session`,
      })
    }
    for (const channel of channels) channel.isPrimary = channel === primary
    return channels
  }

  async #settings(ffmpegPath: string, channels: ReadonlyArray<Channel>): Promise<CaptureSettings> {
    const synthetic = typeof this.#options.synthetic === "object" ? this.#options.synthetic : {}
    const syntheticVideo = { ...defaultCaptureSettings.syntheticVideo, ...synthetic }
    const needsText = channels.some(
      (channel) => channel.source.kind === "synthetic" && channel.type === "video",
    )
    return {
      segmentSeconds: this.#options.segmentSeconds ?? defaultCaptureSettings.segmentSeconds,
      frameRate: this.#options.frameRate ?? defaultCaptureSettings.frameRate,
      syntheticVideo,
      drawText: needsText ? await canDrawText(ffmpegPath) : false,
    }
  }

  /**
   * A channel's pause and resume while recording: its ffmpeg stops or starts, then the server is
   * told when (the end of the last segment, the start of the new run), one after the other.
   */
  #control(channel: Channel, capture: ChannelCapture, session: ActiveSession): ChannelControl {
    let queue: Promise<unknown> = Promise.resolve()
    const inTurn = (operation: () => Promise<void>): Promise<void> => {
      const next = queue.then(operation, operation)
      queue = next.catch(() => {})
      return next
    }
    return {
      pause: () =>
        inTurn(async () => {
          if (this.#state !== "recording") return
          await capture.stop()
          await session.pauses.report("pause", channel.id, capture.runEndMs ?? Date.now())
        }),
      // A failed start is reported by the capture (`recording:error`) and retried like any
      // failure: the channel is no longer paused either way.
      resume: () =>
        inTurn(async () => {
          if (this.#state !== "recording") return
          try {
            await capture.start()
          } finally {
            await session.pauses.report("resume", channel.id, capture.runStartMs ?? Date.now())
          }
        }),
    }
  }

  #onUploaded(sessionId: string, record: SegmentRecord, duplicate: boolean, final: boolean): void {
    this.#events.emit("upload:progress", {
      sessionId,
      channelId: record.channel_id,
      index: record.index,
      bytes: record.bytes,
      durationMs: record.duration_ms,
      duplicate,
      final,
      ...this.uploadStats(),
    })
  }

  #onUploadFailed(sessionId: string, record: SegmentRecord, error: IngestError): void {
    if (isRecordedAfterStop(error)) {
      void this.#uploadUntilStop("stopped")
      return
    }
    if (isSessionEnded(error)) {
      void this.#serverEnded(error.currentStatus ?? "stopped")
      return
    }
    this.#events.emit("recording:error", {
      sessionId,
      channelId: record.channel_id,
      index: record.index,
      error,
    })
  }

  /**
   * The server stopped the session by itself (its late-media window answered one channel's
   * segment `recorded_after_stop`): capture stops, every channel uploads what it holds until it
   * too reaches media after the stop (or drains), then the client ends as if the server ended it.
   * A window that closes meanwhile (409 `invalid_transition`) ends it at once.
   */
  async #uploadUntilStop(status: string): Promise<void> {
    const session = this.#session
    if (session === undefined || this.#state !== "recording") return
    this.#state = "stopping"
    session.pauses.abort()
    await Promise.all(session.pipelines.map((pipeline) => pipeline.capture?.stop()))
    for (const pipeline of session.pipelines) pipeline.channel?.attach(undefined)
    for (const pipeline of session.pipelines) pipeline.uploader.finish()
    await Promise.all(session.pipelines.map((pipeline) => pipeline.uploader.done))
    if (this.#state === "stopping") await this.#serverEnded(status)
  }

  /** The server ended the session: stop everything, keep the spool (marked ended), report it. */
  async #serverEnded(status: string): Promise<void> {
    const session = this.#session
    if (
      session === undefined ||
      this.#state === "ended" ||
      this.#state === "shutdown" ||
      this.#state === "stopped"
    ) {
      return
    }
    this.#state = "ended"
    session.pauses.abort()
    for (const pipeline of session.pipelines) {
      pipeline.uploader.abort()
      pipeline.channel?.attach(undefined)
    }
    await Promise.all(session.pipelines.map((pipeline) => pipeline.capture?.stop()))
    try {
      const file = await session.spool.readSession()
      if (file !== undefined)
        await session.spool.writeSession({ ...file, status: "ended", server_status: status })
    } catch (error) {
      this.#events.emit("error", { error })
    }
    this.#events.emit("recording:stopped", {
      sessionId: session.sessionId,
      reason: "server_ended",
      currentStatus: status,
    })
  }

  #checkCapture(): void {
    this.#failIfNothingCaptures().catch((error: unknown) => this.#events.emit("error", { error }))
  }

  /**
   * When every stored channel (every channel, if none is stored) has given up, fails the session
   * on the server with the channels' last errors and ends the client like a server-ended session.
   * The spool is marked ended only once the server confirmed; otherwise a later start resumes.
   */
  async #failIfNothingCaptures(): Promise<void> {
    const session = this.#session
    if (session === undefined || this.#state !== "recording") return
    const captured = session.pipelines.filter((pipeline) => pipeline.capture !== undefined)
    const stored = captured.filter((pipeline) => pipeline.channel?.store !== false)
    const watched = stored.length > 0 ? stored : captured
    if (watched.length === 0 || !watched.every((pipeline) => pipeline.capture?.gaveUp)) return
    this.#state = "ended"
    session.pauses.abort()
    for (const pipeline of session.pipelines) {
      pipeline.uploader.abort()
      pipeline.channel?.attach(undefined)
    }
    await Promise.all(session.pipelines.map((pipeline) => pipeline.capture?.stop()))
    const channelIds = watched.map((pipeline) => pipeline.channelId)
    const lastErrors = watched.map((pipeline) => pipeline.capture?.lastFailure?.message ?? pipeline.channelId)
    const message = `every stored channel's capture gave up (${channelIds.join(", ")}): ${lastErrors.join("; ")}`
    const reason = {
      code: CAPTURE_FAILED,
      message: message.length > 2048 ? `${message.slice(0, 2045)}...` : message,
    }
    this.#events.emit("recording:error", {
      sessionId: session.sessionId,
      error: new CaptureGaveUp({ sessionId: session.sessionId, channelIds, message: reason.message }),
    })
    let status: string | undefined
    try {
      await this.#withRetry(() => session.client.failSession(session.sessionId, { error: reason }))
      status = "failed"
    } catch (error) {
      if (isIngestError(error) && isSessionEnded(error)) status = error.currentStatus ?? "stopped"
      else {
        const recorderError = isIngestError(error)
          ? error
          : new NetworkError({ message: `fail: ${String(error)}`, cause: error })
        this.#events.emit("recording:error", { sessionId: session.sessionId, error: recorderError })
      }
    }
    if (status !== undefined) {
      try {
        const file = await session.spool.readSession()
        if (file !== undefined)
          await session.spool.writeSession({ ...file, status: "ended", server_status: status })
      } catch (error) {
        this.#events.emit("error", { error })
      }
    }
    this.#events.emit("recording:stopped", {
      sessionId: session.sessionId,
      reason: "capture_failed",
      ...(status === undefined ? {} : { currentStatus: status }),
    })
  }

  #ended(sessionId: string, status: string): SessionEnded {
    return new SessionEnded({
      sessionId,
      status,
      message: `session ${sessionId} was ended by the server (status ${status}); it takes no more media`,
    })
  }

  /**
   * The start call, retried with the upload backoff while the failure is retryable and
   * `startRetryMs` has not run out; each retry is reported as a `recording:error`.
   */
  async #untilStarted<A>(call: () => Promise<A>, sessionId: string): Promise<A> {
    const giveUpAt = Date.now() + (this.#options.startRetryMs ?? DEFAULT_START_RETRY_MS)
    const maxDelayMs = this.#options.upload?.maxDelayMs ?? 10_000
    let delayMs = this.#options.upload?.baseDelayMs ?? 250
    for (;;) {
      try {
        return await call()
      } catch (thrown) {
        const error = isIngestError(thrown)
          ? thrown
          : new NetworkError({ message: String(thrown), cause: thrown })
        // Jittered like the uploads, so many recorders coming back do not call at the same instant.
        const waitMs = Math.max(
          delayMs * (0.8 + Math.random() * 0.4),
          error instanceof HttpError ? (error.retryAfterMs ?? 0) : 0,
        )
        if (!isRetryable(error) || Date.now() + waitMs > giveUpAt) throw error
        this.#retries += 1
        this.#events.emit("recording:error", { sessionId, error })
        await new Promise((resolve) => setTimeout(resolve, waitMs))
        delayMs = Math.min(delayMs * 2, maxDelayMs)
      }
    }
  }

  /** A control call (stop, fail) retried like an upload, at most 5 times. */
  async #withRetry<A>(call: () => Promise<A>): Promise<A> {
    const schedule = retrySchedule({
      baseDelayMs: this.#options.upload?.baseDelayMs ?? 250,
      maxDelayMs: this.#options.upload?.maxDelayMs ?? 10_000,
    })
    const exit = await Effect.runPromiseExit(
      Effect.tryPromise({
        try: () => call(),
        catch: (error): IngestError =>
          isIngestError(error) ? error : new NetworkError({ message: String(error), cause: error }),
      }).pipe(Effect.retry({ schedule, while: isRetryable, times: 5 })),
    )
    if (Exit.isSuccess(exit)) return exit.value
    const failure = exit.cause.reasons.find((reason) => reason._tag === "Fail")
    throw failure?.error ?? new NetworkError({ message: "interrupted" })
  }
}

const ignoreCaptureFailed = (error: unknown): void => {
  if (!(error instanceof CaptureFailed)) throw error
}

const isIngestError = (error: unknown): error is IngestError =>
  error instanceof HttpError || error instanceof NetworkError
