/**
 * The mechanism the mix's long-lived AAC decoders and encoder share: one ffmpeg kept running
 * across windows and sessions, fed whole frames on stdin, its output counted by frame index. Runs
 * go one at a time (a queue); each writes its input and a little silence that pushes its last
 * frames through ffmpeg's buffers, then waits (one waiter) until the output has reached the index
 * it needs, writing more silence while it is held back. A process that fails, ends or stays silent
 * too long is killed and fails the run waiting on it; the next run starts another.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process"
import type { Readable, Writable } from "node:stream"
import { FfmpegFailed } from "../Ffmpeg.js"
import { countStart } from "./process.js"

export type FfmpegChild = ChildProcessByStdio<Writable, Readable, Readable>

/** Silence written after a run; more follows while its last frames are still held back. */
const FLUSH_FRAMES = 2
/** How long to wait for output before writing another frame of silence. */
const NUDGE_MS = 20
/** A run that takes this long means a stuck process: it is killed and the next run starts anew. */
const TIMEOUT_MS = 30_000

interface Waiter {
  /** Output (in the subclass's unit: bytes, frames) needed before it can be answered. */
  readonly until: number
  readonly resolve: () => void
  readonly reject: (error: Error) => void
}

/** One long-lived ffmpeg; subclasses say how its output is counted and taken. */
export abstract class LongLivedFfmpeg {
  protected child: FfmpegChild | undefined
  /** Input frames written to the current process. */
  protected written = 0
  protected stderr = ""
  private waiter: Waiter | undefined
  private queue: Promise<unknown> = Promise.resolve()
  private closed = false
  /** ffmpeg processes started so far (one, unless one failed). */
  processesStarted = 0

  constructor(
    protected readonly ffmpeg: string,
    private readonly args: ReadonlyArray<string>,
    /** What it is, for errors (`AAC decoder`). */
    private readonly what: string,
    /** One frame of silent input. */
    private readonly silence: Uint8Array,
  ) {}

  /** How much output the current process has given, in the unit `feed`'s `until` is in. */
  protected abstract progress(): number
  /** Forgets the previous process's output (a new one starts). */
  protected abstract reset(): void
  /** A chunk of the current process's output. */
  protected abstract onOutput(chunk: Buffer): void

  /** Kills the running process, as a crash would (tests): the next run starts another. */
  async kill(): Promise<void> {
    const child = this.child
    if (child === undefined) return
    const closed = new Promise((resolve) => child.once("close", resolve))
    child.kill("SIGKILL")
    await closed
  }

  /** Ends the process (its stdin closed: it exits by itself). */
  close(): void {
    this.closed = true
    this.child?.stdin.end()
    this.child = undefined
  }

  /** Runs `job` after the runs before it, on the running process (started if there is none). */
  protected run<T>(job: (child: FfmpegChild) => Promise<T>): Promise<T> {
    const result = this.queue.then(() => {
      if (this.closed) throw new Error(`the ${this.what} is closed`)
      return job(this.child ?? this.spawn())
    })
    this.queue = result.catch(() => undefined)
    return result
  }

  /** Whether a run is waiting for output (output while none is, is silence nobody asked for). */
  protected get waiting(): boolean {
    return this.waiter !== undefined
  }

  /**
   * Writes `input` (`frames` frames) and the flush silence, and waits until `progress()` reaches
   * `until`. Fails when the process fails, ends or gives nothing for too long.
   */
  protected async feed(child: FfmpegChild, input: Uint8Array, frames: number, until: number): Promise<void> {
    this.stderr = ""
    const done = new Promise<void>((resolve, reject) => {
      this.waiter = { until, resolve, reject }
    })
    this.write(child, input, frames)
    for (let i = 0; i < FLUSH_FRAMES; i++) this.write(child, this.silence, 1)
    this.check()
    const started = Date.now()
    const nudge = setInterval(() => {
      if (Date.now() - started > TIMEOUT_MS) {
        this.fail(
          child,
          new FfmpegFailed(this.ffmpeg, null, `the ${this.what} gave no output for ${TIMEOUT_MS} ms`),
        )
        return
      }
      // Still held back (start-up, a busy machine): push a little more silence through.
      if (this.child === child) this.write(child, this.silence, 1)
    }, NUDGE_MS)
    try {
      await done
    } finally {
      clearInterval(nudge)
    }
  }

  /** Answers the waiting run once the output has reached what it needs. */
  protected check(): void {
    const waiter = this.waiter
    if (waiter !== undefined && this.progress() >= waiter.until) {
      this.waiter = undefined
      waiter.resolve()
    }
  }

  /** The process failed or ended: whoever waits gets the error, the next run a new process. */
  protected fail(child: FfmpegChild, error: Error): void {
    if (this.child !== child && this.child !== undefined) return
    if (this.child === child) {
      this.child = undefined
      child.kill("SIGKILL")
    }
    const waiter = this.waiter
    this.waiter = undefined
    waiter?.reject(error)
  }

  private write(child: FfmpegChild, bytes: Uint8Array, frames: number): void {
    child.stdin.write(bytes)
    this.written += frames
  }

  private spawn(): FfmpegChild {
    const child = spawn(this.ffmpeg, [...this.args], { stdio: ["pipe", "pipe", "pipe"] })
    countStart(this.ffmpeg, "long_lived")
    this.processesStarted++
    this.child = child
    this.written = 0
    this.stderr = ""
    this.reset()
    child.stdout.on("data", (chunk: Buffer) => {
      if (this.child !== child) return
      this.onOutput(chunk)
      this.check()
    })
    child.stderr.on("data", (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString("utf8")).slice(-2_000)
    })
    child.stdin.on("error", () => {})
    child.on("error", (error) => this.fail(child, error))
    child.on("close", (code) => this.fail(child, new FfmpegFailed(this.ffmpeg, code, this.stderr)))
    return child
  }
}

/** `size` workers made by `make`; each use goes to a free one (or the least busy). */
export class LeastBusyPool<T> {
  private readonly slots: Array<{ worker: T; busy: number }>

  constructor(size: number, make: () => T) {
    this.slots = Array.from({ length: Math.max(1, size) }, () => ({ worker: make(), busy: 0 }))
  }

  async use<R>(job: (worker: T) => Promise<R>): Promise<R> {
    const slot = this.slots.reduce((a, b) => (b.busy < a.busy ? b : a))
    slot.busy++
    try {
      return await job(slot.worker)
    } finally {
      slot.busy--
    }
  }

  /** Every worker (tests, closing). */
  get all(): ReadonlyArray<T> {
    return this.slots.map((s) => s.worker)
  }
}
