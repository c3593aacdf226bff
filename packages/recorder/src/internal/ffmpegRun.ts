/**
 * One ffmpeg process writing one channel's segments. Its stderr (ffmpeg logs at `info`) says when
 * capture starts and when each segment file is opened; the run turns those lines into callbacks.
 *
 * ffmpeg runs in its own process group, so a Ctrl-C meant for the recorder does not reach it (the
 * recorder stops it itself, with `q`). It must not outlive the recorder either: on Linux it runs
 * under a small `sh` guard started through `setpriv --pdeathsig INT`, so the kernel signals the
 * guard when the recorder dies, even by SIGKILL. The kernel may signal several times (once per
 * dying thread of the recorder) and ffmpeg aborts without finishing its segment on a second
 * SIGINT, so the guard forwards exactly one: ffmpeg then closes its last segment cleanly. A
 * restarted recorder also stops any process it finds still working in a channel's folder
 * (`stopStaleProcesses`).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { readdir, readFile, unlink, writeFile } from "node:fs/promises"
import { basename } from "node:path"
import { findOnPath } from "../Ffmpeg.js"

/** How capture started: the wall-clock time of the first sample, and where it came from. */
export interface RunStart {
  readonly firstSampleMs: number
  readonly clock: "device" | "process"
}

/** How the process ended. `clean`: exit code 0 (after `q`, SIGINT, or the input ending). */
export interface RunExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly clean: boolean
  /** The last lines ffmpeg logged, for error messages. */
  readonly log: string
}

/** What the run reports while it runs. */
export interface RunCallbacks {
  /** ffmpeg opened segment `index` for writing: every lower index of this run is complete. */
  readonly onOpened: (index: number) => void
}

const LOG_LINES = 40
// Epoch seconds are past 1e9 since 2001; a device clock (x11grab, PulseAudio) reports those, a
// generator (lavfi) starts at 0.
const EPOCH_SECONDS = 1e9

/**
 * The guard: runs `$0 "$@"` (ffmpeg) in the background on the guard's stdin, forwards the first
 * INT/TERM/HUP it gets as one SIGINT, and exits with ffmpeg's status.
 */
const GUARD = [
  "exec 3<&0",
  '"$0" "$@" <&3 3<&- &',
  "child=$!",
  "sent=",
  'forward() { if [ -z "$sent" ]; then sent=1; kill -INT "$child" 2>/dev/null; fi; }',
  "trap forward INT TERM HUP",
  'while :; do wait "$child"; status=$?; kill -0 "$child" 2>/dev/null || break; done',
  'if [ "$status" -gt 128 ]; then wait "$child"; last=$?; [ "$last" -ne 127 ] && status=$last; fi',
  'exit "$status"',
].join("\n")

let setprivPath: string | null | undefined

/** The command that runs ffmpeg: through the guard on Linux (when setpriv exists), else directly. */
const commandFor = (ffmpegPath: string, args: ReadonlyArray<string>): [string, ReadonlyArray<string>] => {
  if (process.platform === "linux") {
    if (setprivPath === undefined) setprivPath = findOnPath("setpriv") ?? null
    if (setprivPath !== null) {
      return [setprivPath, ["--pdeathsig", "INT", "--", "/bin/sh", "-c", GUARD, ffmpegPath, ...args]]
    }
  }
  return [ffmpegPath, args]
}

const inOwnGroup = process.platform !== "win32"

/** A running ffmpeg. */
export class FfmpegRun {
  /** Resolves when capture has started; rejects when ffmpeg exits before. */
  readonly started: Promise<RunStart>
  /** Resolves when the process has exited. */
  readonly exited: Promise<RunExit>
  readonly #child: ChildProcess
  readonly #log: string[] = []
  #inputStart: number | undefined
  #start: RunStart | undefined
  #exit: RunExit | undefined

  constructor(
    ffmpegPath: string,
    args: ReadonlyArray<string>,
    callbacks: RunCallbacks,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    const [command, argv] = commandFor(ffmpegPath, args)
    this.#child = spawn(command, [...argv], {
      stdio: ["pipe", "ignore", "pipe"],
      env,
      windowsHide: true,
      detached: inOwnGroup,
    })
    this.#child.stdin?.on("error", () => {})

    let resolveStarted: (start: RunStart) => void = () => {}
    let rejectStarted: (error: Error) => void = () => {}
    this.started = new Promise((resolve, reject) => {
      resolveStarted = resolve
      rejectStarted = reject
    })
    this.started.catch(() => {})
    const markStarted = (start: RunStart) => {
      if (this.#start !== undefined) return
      this.#start = start
      resolveStarted(start)
    }

    let pending = ""
    this.#child.stderr?.setEncoding("utf8")
    this.#child.stderr?.on("data", (chunk: string) => {
      const now = Date.now()
      pending += chunk
      const lines = pending.split(/\r?\n|\r/)
      pending = lines.pop() ?? ""
      for (const line of lines) this.#line(line, now, markStarted, callbacks)
    })

    this.exited = new Promise((resolve) => {
      const finish = (code: number | null, signal: NodeJS.Signals | null) => {
        if (this.#exit !== undefined) return
        if (pending !== "") this.#line(pending, Date.now(), markStarted, callbacks)
        this.#exit = { code, signal, clean: code === 0, log: this.#log.join("\n") }
        if (this.#start === undefined) {
          rejectStarted(
            new Error(`ffmpeg exited (${signal ?? `code ${code}`}) before capturing:\n${this.log}`),
          )
        }
        resolve(this.#exit)
      }
      this.#child.on("error", (error) => {
        this.#log.push(String(error))
        finish(null, null)
      })
      this.#child.on("close", finish)
    })
  }

  /** The process id. */
  get pid(): number | undefined {
    return this.#child.pid
  }

  /** Whether the process is still running. */
  get running(): boolean {
    return this.#exit === undefined
  }

  /** The last lines ffmpeg logged. */
  get log(): string {
    return this.#log.join("\n")
  }

  #line(line: string, now: number, markStarted: (start: RunStart) => void, callbacks: RunCallbacks): void {
    if (line.trim() === "") return
    this.#log.push(line)
    if (this.#log.length > LOG_LINES) this.#log.shift()
    const duration = /^\s*Duration: .*?, start: (-?\d+(?:\.\d+)?)/.exec(line)
    if (duration !== null && this.#inputStart === undefined) {
      this.#inputStart = Number(duration[1])
      return
    }
    if (line.includes("Press [q] to stop")) {
      markStarted(this.#startAt(now))
      return
    }
    const opened = /Opening '(.+)' for writing/.exec(line)
    if (opened !== null) {
      const name = basename(opened[1] ?? "")
      const index = /^(\d{8,})\.ts$/.exec(name)
      if (index !== null) {
        markStarted(this.#startAt(now))
        callbacks.onOpened(Number(index[1]))
      }
    }
  }

  /** The device's first timestamp when it is wall-clock time, else now (the generator just started). */
  #startAt(now: number): RunStart {
    return this.#inputStart !== undefined && this.#inputStart > EPOCH_SECONDS
      ? { firstSampleMs: Math.round(this.#inputStart * 1_000), clock: "device" }
      : { firstSampleMs: now, clock: "process" }
  }

  /**
   * Stops ffmpeg so its last segment is complete: `q` on stdin, then SIGINT after `graceMs`, then
   * SIGKILL after as long again.
   */
  async finish(graceMs = 5_000): Promise<RunExit> {
    if (this.#exit !== undefined) return this.#exit
    this.#child.stdin?.write("q")
    this.#child.stdin?.end()
    const escalate = async (signal: NodeJS.Signals) => {
      const exited = await Promise.race([this.exited.then(() => true), delay(graceMs).then(() => false)])
      if (!exited) this.#child.kill(signal)
      await Promise.race([this.exited, delay(graceMs)])
    }
    await escalate("SIGINT")
    if (this.#exit === undefined) this.kill()
    return this.exited
  }

  /** Kills ffmpeg (and its guard) at once; its last segment is then cut short. */
  kill(): void {
    if (this.#exit !== undefined) return
    const pid = this.#child.pid
    try {
      if (inOwnGroup && pid !== undefined) process.kill(-pid, "SIGKILL")
      else this.#child.kill("SIGKILL")
    } catch {
      // gone already
    }
  }
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref())

/** Records a run's pid in the spool. */
export const writePidFile = (path: string, pid: number | undefined): Promise<void> =>
  pid === undefined ? Promise.resolve() : writeFile(path, `${pid}\n`)

/** Removes a pid file. */
export const removePidFile = async (path: string): Promise<void> => {
  try {
    await unlink(path)
  } catch {
    // gone already
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Live processes (not zombies) whose command line contains `marker`; Linux only (`/proc`). */
const processesMentioning = async (marker: string): Promise<ReadonlyArray<number>> => {
  if (process.platform !== "linux") return []
  const pids: number[] = []
  let names: string[]
  try {
    names = await readdir("/proc")
  } catch {
    return []
  }
  for (const name of names) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    try {
      const commandLine = await readFile(`/proc/${name}/cmdline`, "utf8")
      if (commandLine.includes(marker)) pids.push(Number(name))
    } catch {
      // exited meanwhile
    }
  }
  return pids
}

/**
 * Stops what a dead recorder left working in a channel's folder (`marker`): every live process
 * whose command line names it gets SIGINT (ffmpeg finishes its segment), then SIGKILL after
 * `graceMs`. Linux only, where `/proc` says what a process is; elsewhere the pid file is removed.
 */
export const stopStaleProcesses = async (pidFile: string, marker: string, graceMs = 5_000): Promise<void> => {
  const stale = await processesMentioning(marker)
  for (const pid of stale) {
    try {
      process.kill(pid, "SIGINT")
    } catch {
      // gone
    }
  }
  const deadline = Date.now() + graceMs
  const living = async () => (await processesMentioning(marker)).filter(alive)
  while ((await living()).length > 0 && Date.now() < deadline) await delay(50)
  for (const pid of await living()) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // gone
    }
  }
  await removePidFile(pidFile)
}
