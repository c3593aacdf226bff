/**
 * Tesseract kept loaded: the CLI spends 0.3–0.4 CPU s of each read loading its model, more than
 * reading a screen's text. One long-lived child process (`TesseractHost`) holds the engine through
 * Debian's `libtesseract.so.5` and reads the images it is sent one at a time, so a read does not
 * block this process and a crash in the library ends that child only.
 *
 * Reads are never lost to the engine: one in flight when the child dies (a crash, a kill, a read
 * stuck past `READ_TIMEOUT_MS`) is tried once more on a new child, then by the CLI. Where the
 * library or koffi cannot load, every read goes to the CLI (`TesseractReader`).
 */
import { type ChildProcessByStdio, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import type { Readable, Writable } from "node:stream"
import { fileURLToPath } from "node:url"
import { OcrError, type ScreenRegion, TesseractReader, type TextReader } from "./TesseractReader.js"

/** A read taking longer than this (a 1080p screen of text takes ~0.5 s) is taken as a hung engine. */
const READ_TIMEOUT_MS = 60_000
/** Tries of one read on a loaded engine before the CLI reads it. */
const ENGINE_ATTEMPTS = 2
const STATUS_TEXT = 0
const STATUS_UNREADABLE = 1
const STATUS_NO_ENGINE = 2

/** The host script, compiled; under sources (vitest) the package's build of it. */
const hostScript = (): string => {
  const beside = fileURLToPath(new URL("./TesseractHost.js", import.meta.url))
  return existsSync(beside)
    ? beside
    : fileURLToPath(new URL("../../dist/engines/TesseractHost.js", import.meta.url))
}

interface Read {
  readonly image: Uint8Array
  readonly region: ScreenRegion | undefined
  readonly resolve: (text: string) => void
  readonly reject: (error: Error) => void
  attempts: number
}

type Host = ChildProcessByStdio<Writable, Readable, null>

export interface TesseractEngineOptions {
  /** The shared library (default Debian's `libtesseract.so.5`); its leptonica is found beside it. */
  readonly library?: string
  readonly language?: string
  /** What reads when the library does not load or a read keeps crashing it: the CLI. */
  readonly fallback?: TextReader
}

export class TesseractEngine implements TextReader {
  private host: Host | undefined
  /** Resolves true once the host loaded the engine, false when it cannot. */
  private started: Promise<boolean> | undefined
  private unavailable = false
  /** Whether an engine ever loaded here: one dying while it loads then is a crash, not a missing library. */
  private loadedOnce = false
  private readonly queue: Array<Read> = []
  private busy = false
  private nextId = 1
  private answer: ((status: number, text: string) => void) | undefined
  private readonly library: string
  private readonly language: string
  private readonly fallback: TextReader
  /** Engines started (the first, and one after each crash). */
  starts = 0

  constructor(options: TesseractEngineOptions = {}) {
    this.library = options.library ?? "libtesseract.so.5"
    this.language = options.language ?? "eng"
    this.fallback = options.fallback ?? new TesseractReader("tesseract", this.language)
  }

  /** The engine process's id, once started (undefined when none runs). */
  get pid(): number | undefined {
    return this.host?.exitCode === null ? this.host.pid : undefined
  }

  /** Which engine reads: the loaded library, or the CLI when it could not load. */
  async engine(): Promise<"library" | "cli"> {
    return (await this.start()) === undefined ? "cli" : "library"
  }

  /** The text of an image (PGM, JPEG, PNG); in `region` only, if given (tesseract's rectangle). */
  read(image: Uint8Array, region?: ScreenRegion): Promise<string> {
    return new Promise((resolve, reject) => {
      this.queue.push({ image, region, resolve, reject, attempts: 0 })
      void this.drain()
    })
  }

  /** Ends the engine process; later reads start a new one. */
  async close(): Promise<void> {
    const host = this.host
    this.host = undefined
    this.started = undefined
    if (host === undefined || host.exitCode !== null || host.signalCode !== null) return
    const exited = new Promise<void>((resolve) => host.once("close", () => resolve()))
    host.stdin.end()
    await exited
  }

  private async drain(): Promise<void> {
    if (this.busy) return
    this.busy = true
    this.hold(true)
    try {
      for (let next = this.queue.shift(); next !== undefined; next = this.queue.shift()) {
        await this.readOne(next)
      }
    } finally {
      this.busy = false
      this.hold(false)
    }
  }

  private async readOne(read: Read): Promise<void> {
    while (read.attempts < ENGINE_ATTEMPTS) {
      const host = await this.start()
      if (host === undefined) break
      read.attempts++
      const answered = await this.ask(host, read)
      if (answered === undefined) continue // the engine died under this read: a new one tries it
      if (answered.status === STATUS_TEXT) return read.resolve(answered.text)
      if (answered.status === STATUS_UNREADABLE)
        return read.reject(new OcrError(`tesseract: ${answered.text}`))
    }
    this.fallback.read(read.image, read.region).then(read.resolve, read.reject)
  }

  /** The host's answer to one image, or undefined when it died (or hung) before answering. */
  private ask(host: Host, { image, region }: Read): Promise<{ status: number; text: string } | undefined> {
    if (host.exitCode !== null || host.signalCode !== null) return Promise.resolve(undefined)
    const id = this.nextId++
    const header = Buffer.alloc(24)
    header.writeUInt32LE(id, 0)
    if (region !== undefined) {
      // Clamped by tesseract to the image; a rectangle of no pixel is sent as one.
      header.writeInt32LE(Math.max(0, Math.floor(region.left)), 4)
      header.writeInt32LE(Math.max(0, Math.floor(region.top)), 8)
      header.writeInt32LE(Math.max(1, Math.ceil(region.width)), 12)
      header.writeInt32LE(Math.max(1, Math.ceil(region.height)), 16)
    }
    header.writeUInt32LE(image.length, 20)
    return new Promise((resolve) => {
      const settle = (result: { status: number; text: string } | undefined) => {
        clearTimeout(timer)
        host.off("close", died)
        this.answer = undefined
        resolve(result)
      }
      const died = () => settle(undefined)
      const timer = setTimeout(() => {
        host.kill("SIGKILL")
        settle(undefined)
      }, READ_TIMEOUT_MS)
      host.once("close", died)
      this.answer = (status, text) => settle({ status, text })
      host.stdin.write(header)
      host.stdin.write(image)
    })
  }

  /** A loaded engine: the running one, or a new one; undefined when the library cannot load here. */
  private async start(): Promise<Host | undefined> {
    if (this.unavailable) return undefined
    const running = this.host
    if (this.started !== undefined && running !== undefined && running.exitCode === null) {
      return (await this.started) ? running : undefined
    }
    this.starts++
    const host = spawn(process.execPath, [hostScript(), this.library, this.language], {
      stdio: ["pipe", "pipe", "ignore"],
      // One thread: tesseract's OpenMP threads cost more CPU than they save on a screen's text.
      env: { ...process.env, OMP_THREAD_LIMIT: "1" },
    })
    this.host = host
    host.stdin.on("error", () => undefined)
    this.started = new Promise<boolean>((resolve) => {
      let ready: ((status: number, text: string) => void) | undefined = (status) => {
        ready = undefined
        if (status === STATUS_TEXT) this.loadedOnce = true
        else if (status === STATUS_NO_ENGINE || !this.loadedOnce) this.unavailable = true
        resolve(status === STATUS_TEXT)
      }
      host.on("error", () => ready?.(-1, ""))
      host.once("close", () => {
        if (this.host === host) this.host = undefined
        // Died before it was ready (a crash once loaded is handled per read).
        if (ready !== undefined) ready(-1, "")
      })
      let pending: Buffer = Buffer.alloc(0)
      host.stdout.on("data", (chunk: Buffer) => {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
        while (pending.length >= 12) {
          const length = pending.readUInt32LE(8)
          if (pending.length < 12 + length) break
          const id = pending.readUInt32LE(0)
          const status = pending.readInt32LE(4)
          const text = pending.subarray(12, 12 + length).toString("utf8")
          pending = pending.subarray(12 + length)
          if (id === 0) ready?.(status, text)
          else this.answer?.(status, text)
        }
      })
    })
    // Held while it loads (someone waits for it), then only while reads wait.
    this.hold(true)
    const loaded = await this.started
    this.hold(this.busy)
    return loaded ? host : undefined
  }

  /** The engine process keeps this one alive only while reads are waiting. */
  private hold(reads: boolean): void {
    const host = this.host
    if (host === undefined) return
    for (const handle of [host, host.stdin, host.stdout] as Array<{ ref(): void; unref(): void }>) {
      if (reads) handle.ref()
      else handle.unref()
    }
  }
}
