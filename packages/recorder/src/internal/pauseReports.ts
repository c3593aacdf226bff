/**
 * A session's pauses and resumes on their way to the server (`POST …/pause`, `POST …/resume`,
 * one channel each, `at_ms` on the segments' clock): sent one at a time in the order they
 * happened, each retried like a segment while the failure is worth retrying, and kept in the
 * spool (`pauses.json`) until the server has answered. So a pause made while the server is out of
 * reach, or just before the recorder died, still reaches it later, and before its resume.
 *
 * The log also remembers which channels the server holds paused (once what is pending arrives),
 * so a repeated pause sends nothing, and a restarted recorder can tell the server what changed
 * while it was gone.
 */
import { Exit } from "effect"
import {
  type HttpError,
  type IngestClient,
  type IngestError,
  isSessionEnded,
  NetworkError,
} from "../IngestClient.js"
import type { PauseLog, PauseReport, SessionSpool } from "../Spool.js"
import { type RetryOptions, untilAnswered } from "./channelUploader.js"

/** What the reports tell their owner. */
export interface PauseReportsCallbacks {
  /** A retryable failure; the report will be sent again. */
  readonly onRetry: (report: PauseReport, error: IngestError) => void
  /** The server refused a report for good (not a retryable failure): it is dropped, the next goes. */
  readonly onRefused: (report: PauseReport, error: IngestError) => void
  /** The server ended the session: nothing more is sent. */
  readonly onSessionEnded: (error: HttpError) => void
}

/** One session's pause reports. */
export class PauseReports {
  readonly #abort = new AbortController()
  readonly #paused: Set<string>
  readonly #pending: PauseReport[]
  #writing: Promise<void> = Promise.resolve()
  #wake: (() => void) | undefined
  #idle: Array<() => void> = []
  #running = false

  private constructor(
    private readonly spool: SessionSpool,
    private readonly client: IngestClient,
    private readonly retry: RetryOptions,
    private readonly callbacks: PauseReportsCallbacks,
    log: PauseLog,
  ) {
    this.#paused = new Set(log.paused)
    this.#pending = [...log.pending]
  }

  /** The session's reports as its spool left them (a restarted recorder sends what is pending). */
  static async open(
    spool: SessionSpool,
    client: IngestClient,
    retry: RetryOptions,
    callbacks: PauseReportsCallbacks,
  ): Promise<PauseReports> {
    return new PauseReports(spool, client, retry, callbacks, await spool.readPauses())
  }

  /** Whether the server holds `channelId` paused (or will, once what is pending arrives). */
  isPaused(channelId: string): boolean {
    return this.#paused.has(channelId)
  }

  /** Reports not yet answered, oldest first. */
  get pending(): ReadonlyArray<PauseReport> {
    return this.#pending
  }

  /** Starts sending (once the session exists on the server). */
  start(): void {
    if (this.#running) return
    this.#running = true
    void this.#run()
  }

  /**
   * Queues a pause or resume of `channelId` from `atMs`, unless the server already holds the
   * channel so; resolves once it is in the spool.
   */
  async report(action: PauseReport["action"], channelId: string, atMs: number): Promise<void> {
    if (this.#abort.signal.aborted) return
    if (this.#paused.has(channelId) === (action === "pause")) return
    if (action === "pause") this.#paused.add(channelId)
    else this.#paused.delete(channelId)
    this.#pending.push({ action, channel_id: channelId, at_ms: Math.max(0, Math.round(atMs)) })
    await this.#save()
    this.#notify()
  }

  /** Resolves once every queued report has been answered, or sending stopped. */
  settled(): Promise<void> {
    if (this.#pending.length === 0 || this.#abort.signal.aborted) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  /** Stops sending; what is pending stays in the spool for a later recorder. */
  abort(): void {
    this.#abort.abort()
    this.#notify()
    this.#settle()
  }

  #notify(): void {
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }

  #settle(): void {
    for (const resolve of this.#idle.splice(0)) resolve()
  }

  /** Writes the log; writes go one after another (they share a temporary file name). */
  #save(): Promise<void> {
    const log: PauseLog = { paused: [...this.#paused], pending: [...this.#pending] }
    const write = this.#writing.then(() => this.spool.writePauses(log))
    this.#writing = write.catch(() => {})
    return write
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal
    while (!signal.aborted) {
      const report = this.#pending[0]
      if (report === undefined) {
        this.#settle()
        await new Promise<void>((resolve) => {
          this.#wake = resolve
        })
        continue
      }
      const body = { channel_ids: [report.channel_id], at_ms: report.at_ms }
      const exit = await untilAnswered(
        (abort) =>
          report.action === "pause"
            ? this.client.pauseChannels(this.spool.sessionId, body, abort)
            : this.client.resumeChannels(this.spool.sessionId, body, abort),
        this.retry,
        signal,
        (error) => this.callbacks.onRetry(report, error),
      )
      if (signal.aborted) return
      if (Exit.isFailure(exit)) {
        const error =
          exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error ??
          new NetworkError({ message: `${report.action} interrupted` })
        if (isSessionEnded(error)) {
          this.abort()
          this.callbacks.onSessionEnded(error)
          return
        }
        this.callbacks.onRefused(report, error)
      }
      this.#pending.shift()
      try {
        await this.#save()
      } catch {
        // The next write has the whole log again; at worst a restarted recorder repeats this one.
      }
    }
  }
}
