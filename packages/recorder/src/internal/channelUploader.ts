/**
 * One channel's upload: segments go out strictly in index order, one at a time, each retried
 * with exponential backoff and jitter while the failure is worth retrying (no answer, 408, 429,
 * 5xx; `Retry-After` is honoured as a minimum). A segment leaves the spool only once acknowledged.
 *
 * The newest segment is held back until the uploader knows whether it is the channel's last: it
 * goes out as soon as a later segment exists (ffmpeg opened the next file), or, once capture has
 * finished for good, with `x-segment-final: 1`. So a paused channel's newest segment waits for
 * the resume or the stop.
 */
import { readFile } from "node:fs/promises"
import type { SegmentAck } from "@capture/protocol"
import { Duration, Effect, Exit, Schedule } from "effect"
import { HttpError, type IngestClient, type IngestError, isRetryable, NetworkError } from "../IngestClient.js"
import type { ChannelSpool, SegmentRecord } from "../Spool.js"

/** Backoff bounds: the first retry waits about `baseDelayMs`, no retry waits more than `maxDelayMs`. */
export interface RetryOptions {
  readonly baseDelayMs: number
  readonly maxDelayMs: number
}

/** What the uploader reports. */
export interface UploaderCallbacks {
  readonly onUploaded: (record: SegmentRecord, ack: SegmentAck, final: boolean) => void
  /** A retryable failure; the segment will be sent again. */
  readonly onRetry: (record: SegmentRecord, error: IngestError) => void
  /** A failure retrying cannot fix (or an unreadable segment): the uploader stops. */
  readonly onFailed: (record: SegmentRecord, error: IngestError) => void
}

/** How an uploader ended: everything sent, stopped by a failure, or aborted. */
export type UploaderOutcome = "drained" | "halted" | "aborted"

/** The retry schedule: exponential from `baseDelayMs`, capped, jittered, at least `Retry-After`. */
export const retrySchedule = (options: RetryOptions) =>
  Schedule.exponential(Duration.millis(options.baseDelayMs), 2).pipe(
    Schedule.modifyDelay(({ duration }) =>
      Effect.succeed(Duration.millis(Math.min(Duration.toMillis(duration), options.maxDelayMs))),
    ),
    Schedule.jittered,
    Schedule.modifyDelay(({ duration, input }) =>
      Effect.succeed(
        Duration.millis(
          Math.max(Duration.toMillis(duration), input instanceof HttpError ? (input.retryAfterMs ?? 0) : 0),
        ),
      ),
    ),
  )

/**
 * Calls `call` until it is answered: a failure worth retrying is retried on `retrySchedule`
 * (`onRetry` hears each), any other ends it. The exit is interrupted when `signal` aborts.
 */
export const untilAnswered = <A>(
  call: (signal: AbortSignal) => Promise<A>,
  retry: RetryOptions,
  signal: AbortSignal,
  onRetry: (error: IngestError) => void,
): Promise<Exit.Exit<A, IngestError>> =>
  Effect.runPromiseExit(
    Effect.tryPromise({
      try: call,
      catch: (error): IngestError =>
        error instanceof NetworkError || error instanceof HttpError
          ? error
          : new NetworkError({ message: String(error), cause: error }),
    }).pipe(
      Effect.tapError((error) => Effect.sync(() => isRetryable(error) && onRetry(error))),
      Effect.retry({ schedule: retrySchedule(retry), while: isRetryable }),
    ),
    { signal },
  )

/** The upload queue of one channel. */
export class ChannelUploader {
  /** How the uploader ended. */
  readonly done: Promise<UploaderOutcome>
  readonly #ready = new Map<number, SegmentRecord>()
  readonly #abort = new AbortController()
  #next: number
  #highestOpened = -1
  #finished = false
  #wake: (() => void) | undefined
  #uploaded = 0
  #uploadedBytes = 0

  constructor(
    private readonly spool: ChannelSpool,
    private readonly client: IngestClient,
    ackedThrough: number,
    private readonly retry: RetryOptions,
    private readonly callbacks: UploaderCallbacks,
  ) {
    this.#next = ackedThrough + 1
    this.done = this.#run()
  }

  /** The channel id. */
  get channelId(): string {
    return this.spool.channelId
  }
  /** Segments waiting to be sent. */
  get pending(): number {
    return this.#ready.size
  }
  /** Segments acknowledged by this uploader. */
  get uploaded(): number {
    return this.#uploaded
  }
  /** Bytes acknowledged by this uploader. */
  get uploadedBytes(): number {
    return this.#uploadedBytes
  }

  /** A finished segment, ready to send. */
  add(record: SegmentRecord): void {
    if (record.index < this.#next) return
    this.#ready.set(record.index, record)
    this.#notify()
  }

  /** ffmpeg opened segment `index`: every lower one is not the channel's last. */
  opened(index: number): void {
    if (index <= this.#highestOpened) return
    this.#highestOpened = index
    this.#notify()
  }

  /** No more segments will come: send the rest, the last one flagged final. */
  finish(): void {
    this.#finished = true
    this.#notify()
  }

  /** Stops at once; an upload in flight is cancelled, unacknowledged segments stay in the spool. */
  abort(): void {
    this.#abort.abort()
    this.#notify()
  }

  #notify(): void {
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }

  #wait(): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve
    })
  }

  async #run(): Promise<UploaderOutcome> {
    const signal = this.#abort.signal
    while (!signal.aborted) {
      const record = this.#ready.get(this.#next)
      if (record === undefined) {
        if (this.#finished) {
          if (this.#ready.size === 0) return "drained"
          // A hole in the indexes (a segment lost from the spool): carry on from the next one.
          this.#next = Math.min(...this.#ready.keys())
          continue
        }
        await this.#wait()
        continue
      }
      const isLast = this.#highestOpened <= record.index && !this.#ready.has(record.index + 1)
      if (isLast && !this.#finished) {
        await this.#wait()
        continue
      }
      const outcome = await this.#upload(record, isLast)
      if (outcome === "aborted" || signal.aborted) return "aborted"
      if (outcome === "halted") return "halted"
      this.#ready.delete(record.index)
      this.#next = record.index + 1
    }
    return "aborted"
  }

  async #upload(record: SegmentRecord, final: boolean): Promise<"sent" | "halted" | "aborted"> {
    let bytes: Buffer
    try {
      bytes = await readFile(this.spool.segmentPath(record.index))
    } catch (cause) {
      this.callbacks.onFailed(
        record,
        new HttpError({
          status: 0,
          message: `segment ${record.index} missing from the spool: ${String(cause)}`,
        }),
      )
      return "halted"
    }
    const exit = await untilAnswered(
      (signal) => this.client.putSegment(record, bytes, final, signal),
      this.retry,
      this.#abort.signal,
      (error) => this.callbacks.onRetry(record, error),
    )
    if (this.#abort.signal.aborted) return "aborted"
    if (Exit.isFailure(exit)) {
      const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error
      this.callbacks.onFailed(record, error ?? new NetworkError({ message: "upload interrupted" }))
      return "halted"
    }
    await this.spool.ack(record.index)
    this.#uploaded += 1
    this.#uploadedBytes += record.bytes
    this.callbacks.onUploaded(record, exit.value, final)
    return "sent"
  }
}
