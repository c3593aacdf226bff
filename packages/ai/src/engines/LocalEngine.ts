/**
 * The local engine: CMU PocketSphinx (Debian's `pocketsphinx` with the `pocketsphinx-en-us`
 * model), offline, with no configuration. One long-lived `pocketsphinx_batch` process per engine
 * loads the model once (~1 s of CPU) and decodes utterance after utterance: each is written as a
 * raw file and its name sent on the process's control input (`-ctl /dev/stdin`); the hypothesis
 * comes back on its log (`<words> (<id> <score>)`, then `<id> done`). Calls queue: one at a time
 * per process. A process that dies fails the call in progress and is started again on the next.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { findOnPath } from "@capture/binaries"
import { toRawBytes } from "../audio/Wav.js"
import { EngineError, type TranscriptionEngine } from "./TranscriptionEngine.js"

export interface LocalEngineOptions {
  /** `pocketsphinx_batch` (default: found on PATH). */
  readonly executable?: string
  /** How long one utterance may take, ms (default 60 s). */
  readonly timeoutMs?: number
}

/** The executable, or undefined when pocketsphinx is not installed. */
export const findPocketsphinx = (): string | undefined => findOnPath("pocketsphinx_batch")

interface Pending {
  readonly id: string
  readonly file: string
  readonly resolve: (text: string) => void
  readonly reject: (error: Error) => void
  text: string | undefined
  timer: ReturnType<typeof setTimeout> | undefined
}

const killGroup = (child: ChildProcessWithoutNullStreams): void => {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL")
  } catch {
    // gone already
  }
}

const HYPOTHESIS = /^(.*) \(([a-z0-9]+) -?\d+\)$/

export class LocalEngine implements TranscriptionEngine {
  readonly name = "local" as const
  private child: ChildProcessWithoutNullStreams | undefined
  private readonly dir = mkdtempSync(join(tmpdir(), "capture-sphinx-"))
  private readonly queue: Array<Pending> = []
  private current: Pending | undefined
  private buffered = ""
  private next = 0
  private closed = false

  constructor(private readonly options: LocalEngineOptions = {}) {}

  transcribe(pcm: Int16Array): Promise<string> {
    if (this.closed) return Promise.reject(new EngineError("the local engine is closed", false))
    return new Promise((resolve, reject) => {
      const id = `u${(this.next++).toString(36)}`
      const file = join(this.dir, `${id}.raw`)
      writeFileSync(file, toRawBytes(pcm))
      this.queue.push({ id, file, resolve, reject, text: undefined, timer: undefined })
      this.pump()
    })
  }

  async close(): Promise<void> {
    this.closed = true
    const child = this.child
    this.child = undefined
    for (const pending of [this.current, ...this.queue.splice(0)]) {
      if (pending !== undefined) this.settle(pending, new EngineError("the local engine is closed", false))
    }
    if (child !== undefined && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve))
      child.stdin.end()
      const killer = setTimeout(() => killGroup(child), 2_000)
      await exited
      clearTimeout(killer)
    }
    rmSync(this.dir, { recursive: true, force: true })
  }

  private pump(): void {
    if (this.current !== undefined || this.closed) return
    const pending = this.queue.shift()
    if (pending === undefined) return
    this.current = pending
    const child = this.child ?? this.start()
    pending.timer = setTimeout(() => {
      // A stuck decoder: start afresh for the next call.
      this.settle(pending, new EngineError(`the local engine took over ${this.timeoutMs} ms`, true))
      killGroup(child)
    }, this.timeoutMs)
    child.stdin.write(`${pending.id}\n`)
  }

  private get timeoutMs(): number {
    return this.options.timeoutMs ?? 60_000
  }

  private start(): ChildProcessWithoutNullStreams {
    const executable = this.options.executable ?? findPocketsphinx()
    if (executable === undefined) {
      throw new EngineError(
        "pocketsphinx_batch is not installed (Debian: pocketsphinx, pocketsphinx-en-us)",
        false,
      )
    }
    // pocketsphinx opens its control file by name, and Node's stdin pipe is a socket, which
    // /dev/stdin cannot open: `cat` turns it into a real pipe. Its own process group, so a stuck
    // decoder is killed with its `cat`.
    const child = spawn(
      "/bin/sh",
      ["-c", 'cat | exec "$0" -adcin yes -cepdir "$1" -cepext .raw -ctl /dev/stdin', executable, this.dir],
      { stdio: ["pipe", "pipe", "pipe"], detached: true },
    )
    this.child = child
    this.buffered = ""
    child.stdout.resume()
    child.stdin.on("error", () => undefined)
    child.stderr.setEncoding("utf8")
    child.stderr.on("data", (chunk: string) => this.read(chunk))
    child.on("error", (error) =>
      this.failCurrent(child, new EngineError(`pocketsphinx: ${error.message}`, true)),
    )
    child.on("exit", (code, signal) =>
      this.failCurrent(child, new EngineError(`pocketsphinx exited (${signal ?? code})`, true)),
    )
    return child
  }

  private read(chunk: string): void {
    this.buffered += chunk
    for (let nl = this.buffered.indexOf("\n"); nl >= 0; nl = this.buffered.indexOf("\n")) {
      const line = this.buffered.slice(0, nl)
      this.buffered = this.buffered.slice(nl + 1)
      const pending = this.current
      if (pending === undefined) continue
      const hypothesis = HYPOTHESIS.exec(line)
      if (hypothesis !== null && hypothesis[2] === pending.id) pending.text = (hypothesis[1] ?? "").trim()
      else if (line.startsWith(`${pending.id} done`)) this.settle(pending, pending.text ?? "")
    }
  }

  private failCurrent(child: ChildProcessWithoutNullStreams, error: EngineError): void {
    if (this.child === child) this.child = undefined
    const pending = this.current
    if (pending !== undefined) this.settle(pending, error)
  }

  private settle(pending: Pending, outcome: string | Error): void {
    if (pending.timer !== undefined) clearTimeout(pending.timer)
    try {
      unlinkSync(pending.file)
    } catch {
      // already gone
    }
    if (this.current === pending) this.current = undefined
    if (typeof outcome === "string") pending.resolve(outcome)
    else pending.reject(outcome)
    this.pump()
  }
}
