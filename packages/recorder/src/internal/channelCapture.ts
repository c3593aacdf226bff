/**
 * One channel's capture: ffmpeg runs (one at a time; a pause ends one, a resume starts the next at
 * the following index) and the bookkeeping that turns finished segment files into spool records.
 *
 * A segment is finished when its run's list names it; the list is read whenever ffmpeg opens the
 * next file, every half second, and once more after the run exits. A segment the run did not list
 * (ffmpeg died mid-segment) is salvaged or dropped (see `ChannelSpool.salvage`).
 *
 * A run that ends by itself, or cannot start, is a failure: while the channel is wanted (started
 * and not stopped) the next run starts after `delayMs`, until `maxFailures` failures fall within
 * `windowMs`; then the capture gives up (a device that is gone fails every start at once).
 */
import { readdir } from "node:fs/promises"
import { Data } from "effect"
import type { Channel } from "../Channels.js"
import { type CaptureSettings, captureArgs, timelineLeadMs } from "../FfmpegInputs.js"
import type { ChannelSpool, RunMeta, SegmentRecord } from "../Spool.js"
import { FfmpegRun, type RunExit, removePidFile, writePidFile } from "./ffmpegRun.js"

/** A channel's ffmpeg failed to start or stopped by itself. */
export class CaptureFailed extends Data.TaggedError("CaptureFailed")<{
  readonly channelId: string
  readonly message: string
  /** ffmpeg's last log lines. */
  readonly log: string
}> {}

/** What the capture needs from its surroundings. */
export interface CaptureContext {
  readonly ffmpegPath: string
  readonly ffprobePath: string
  readonly settings: CaptureSettings
  readonly env: NodeJS.ProcessEnv
}

/** When a failing channel is started again, and when it gives up. */
export interface RestartPolicy {
  /** Failures within `windowMs` after which the capture gives up. */
  readonly maxFailures: number
  readonly windowMs: number
  /** Wait before the next run after a failure. */
  readonly delayMs: number
}

/** Five failures within a minute, a second apart: a device that is gone gives up within seconds. */
export const defaultRestartPolicy: RestartPolicy = { maxFailures: 5, windowMs: 60_000, delayMs: 1_000 }

/** What the capture reports. */
export interface CaptureCallbacks {
  /** A finished segment with its sidecar written. */
  readonly onSegment: (record: SegmentRecord) => void
  /** ffmpeg opened segment `index`. */
  readonly onOpened: (index: number) => void
  /** ffmpeg exited without being asked to, or could not start. */
  readonly onFailed: (error: CaptureFailed) => void
  /** Too many failures: no run is started again unless `start()` is called. */
  readonly onGaveUp: (error: CaptureFailed) => void
}

const COLLECT_INTERVAL_MS = 500

/** The capture of one channel. */
export class ChannelCapture {
  #run: FfmpegRun | undefined
  #meta: RunMeta | undefined
  #runEnded: Promise<void> = Promise.resolve()
  #collected = new Set<number>()
  #collecting: Promise<void> = Promise.resolve()
  #stopping = false
  #operations: Promise<unknown> = Promise.resolve()
  /** Started and not stopped since: a failed run is followed by another. */
  #wanted = false
  #failures: Array<number> = []
  #gaveUp = false
  #retry: NodeJS.Timeout | undefined
  #lastFailure: CaptureFailed | undefined
  /** The end of the newest segment of the current (or last) run, on the segments' clock. */
  #runEndMs: number | undefined

  constructor(
    private readonly channel: Channel,
    private readonly spool: ChannelSpool,
    /** The index the next run starts at. */
    private nextIndex: number,
    private readonly context: CaptureContext,
    private readonly callbacks: CaptureCallbacks,
    private readonly restart: RestartPolicy = defaultRestartPolicy,
  ) {}

  /** Whether ffmpeg is running. */
  get running(): boolean {
    return this.#run?.running ?? false
  }

  /** The wall-clock time (epoch ms, the segments' clock) of the current or last run's start. */
  get runStartMs(): number | undefined {
    return this.#meta?.first_sample_ms
  }

  /**
   * Where the last run's capture ended on the segments' clock: the end of its last segment (its
   * start when it recorded none). Read after `stop()`: when a pause took effect.
   */
  get runEndMs(): number | undefined {
    return this.#runEndMs ?? this.runStartMs
  }

  /** Whether the capture failed too often and stopped trying (until `start()` again). */
  get gaveUp(): boolean {
    return this.#gaveUp
  }

  /** The latest failure, if any. */
  get lastFailure(): CaptureFailed | undefined {
    return this.#lastFailure
  }

  /**
   * Starts an ffmpeg run at the next index; resolves once it captures. No-op when running. Rejects
   * with `CaptureFailed` when ffmpeg cannot start; that failure counts, and the next run follows.
   */
  start(): Promise<void> {
    this.#wanted = true
    this.#gaveUp = false
    this.#failures = []
    return this.#serial(async () => {
      try {
        await this.#start()
      } catch (error) {
        const failure = this.#asFailure(error)
        this.#failed(failure)
        throw failure
      }
    })
  }

  /** Ends the current run cleanly (its last segment complete and recorded). No-op when stopped. */
  stop(): Promise<void> {
    this.#wanted = false
    clearTimeout(this.#retry)
    this.#retry = undefined
    return this.#serial(() => this.#stop())
  }

  /** Reports a failure, then starts the next run later, or gives up after too many. */
  #failed(error: CaptureFailed): void {
    this.#lastFailure = error
    this.callbacks.onFailed(error)
    if (!this.#wanted) return
    const now = Date.now()
    this.#failures = [...this.#failures.filter((at) => at > now - this.restart.windowMs), now]
    if (this.#failures.length >= this.restart.maxFailures) {
      this.#gaveUp = true
      this.callbacks.onGaveUp(error)
      return
    }
    clearTimeout(this.#retry)
    this.#retry = setTimeout(() => {
      this.#retry = undefined
      void this.#serial(async () => {
        if (!this.#wanted || this.#gaveUp || this.running) return
        try {
          await this.#start()
        } catch (error) {
          this.#failed(this.#asFailure(error))
        }
      })
    }, this.restart.delayMs)
  }

  #asFailure(error: unknown): CaptureFailed {
    return error instanceof CaptureFailed
      ? error
      : new CaptureFailed({
          channelId: this.channel.id,
          message: `capture of ${this.channel.id} could not start: ${error instanceof Error ? error.message : String(error)}`,
          log: "",
        })
  }

  #serial(operation: () => Promise<void>): Promise<void> {
    const next = this.#operations.then(operation, operation)
    this.#operations = next.catch(() => {})
    return next
  }

  async #start(): Promise<void> {
    if (this.running) return
    await this.#runEnded
    const startIndex = this.nextIndex
    const args = captureArgs(
      this.channel.source,
      { pattern: this.spool.pattern, startIndex, listFile: this.spool.runListPath(startIndex) },
      this.context.settings,
    )
    this.#stopping = false
    this.#meta = undefined
    this.#runEndMs = undefined
    this.#collected = new Set()
    const run = new FfmpegRun(
      this.context.ffmpegPath,
      args,
      {
        onOpened: (index) => {
          this.callbacks.onOpened(index)
          if (index > startIndex) void this.#collect(run, false)
        },
      },
      this.context.env,
    )
    this.#run = run
    await writePidFile(this.spool.pidPath, run.pid)
    const timer = setInterval(() => void this.#collect(run, false), COLLECT_INTERVAL_MS)
    this.#runEnded = run.exited.then(async (exit) => {
      clearInterval(timer)
      await this.#collect(run, true)
      await removePidFile(this.spool.pidPath)
      if (!this.#stopping && this.#meta !== undefined) this.#failed(this.#failure(exit, "stopped"))
    })
    let start: Awaited<typeof run.started>
    try {
      start = await run.started
    } catch {
      const exit = await run.exited
      await this.#runEnded
      throw this.#failure(exit, "could not start")
    }
    this.#meta = {
      start_index: startIndex,
      first_sample_ms: Math.round(start.firstSampleMs - timelineLeadMs(this.channel.source)),
      clock: start.clock,
    }
    await this.spool.writeRun(this.#meta)
  }

  async #stop(): Promise<void> {
    const run = this.#run
    if (run === undefined) return
    this.#stopping = true
    await run.finish()
    await this.#runEnded
  }

  #failure(exit: RunExit, what: string): CaptureFailed {
    const how = exit.signal ?? `exit code ${exit.code}`
    const lastWords = exit.log.split("\n").slice(-3).join(" / ")
    return new CaptureFailed({
      channelId: this.channel.id,
      message: `ffmpeg for ${this.channel.id} ${what} (${how})${lastWords === "" ? "" : `: ${lastWords}`}`,
      log: exit.log,
    })
  }

  /** Records the run's newly listed segments; after the run ended, also the unlisted last one. */
  #collect(run: FfmpegRun, ended: boolean): Promise<void> {
    const next = this.#collecting.then(async () => {
      const meta = this.#meta
      if (meta === undefined || run !== this.#run) return
      const list = await this.spool.readList(meta.start_index)
      for (const entry of list) {
        if (entry.index < meta.start_index || this.#collected.has(entry.index)) continue
        if (!(await this.spool.hasSegment(entry.index))) continue
        await this.#record(await this.spool.recordOf(meta, entry))
      }
      if (!ended) return
      for (const index of await this.#segmentFiles(meta.start_index)) {
        if (this.#collected.has(index)) continue
        const record = await this.spool.salvage(index, meta, list, this.context.ffprobePath)
        if (record !== undefined) await this.#record(record)
      }
    })
    this.#collecting = next.catch(() => {})
    return this.#collecting
  }

  /** Writes the sidecar, then offers the segment for upload. */
  async #record(record: SegmentRecord): Promise<void> {
    this.#collected.add(record.index)
    this.nextIndex = Math.max(this.nextIndex, record.index + 1)
    this.#runEndMs = Math.max(this.#runEndMs ?? record.start_ms, record.start_ms + record.duration_ms)
    await this.spool.writeSidecar(record)
    this.callbacks.onSegment(record)
  }

  async #segmentFiles(from: number): Promise<ReadonlyArray<number>> {
    let names: string[]
    try {
      names = await readdir(this.spool.dir)
    } catch {
      return []
    }
    return names
      .filter((name) => /^\d{8,}\.ts$/.test(name))
      .map((name) => Number(name.slice(0, -3)))
      .filter((index) => index >= from)
      .sort((a, b) => a - b)
  }
}
