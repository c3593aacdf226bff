/**
 * One `capture serve` per data dir: two embedded nats-servers on one JetStream store corrupt it, so
 * `serve` takes this lock before it starts anything, and a second `serve` refuses to start.
 *
 * The lock is the kernel's, so nothing stale can outlive its owner: `flock(1)` locks
 * `<data-dir>/serve.lock` through a descriptor this process opened and passed to it. A flock
 * belongs to the open file, not to the flock process, so the lock stays after that process exits
 * and ends when this one closes the file, which the kernel does on any exit, SIGKILL included. The
 * file itself stays (removing it would let two processes lock two different files); it holds the
 * owner's pid for the refusal message. Without flock(1) (not Linux), an exclusively created
 * `serve.pid` stands in, taken over once the pid it names is no longer running.
 */
import { spawn } from "node:child_process"
import {
  closeSync,
  constants,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeSync,
} from "node:fs"
import { resolve } from "node:path"
import { findOnPath } from "@capture/binaries"
import { Data, Effect, type Scope } from "effect"

/** The file `serve` locks inside its data dir. */
export const LOCK_FILE = "serve.lock"
/** The stand-in where flock(1) is missing. */
export const PID_FILE = "serve.pid"

const CONFLICT_EXIT = 75

/** Another running `capture serve` owns the data dir. */
export class DataDirInUse extends Data.TaggedError("DataDirInUse")<{
  readonly message: string
  readonly ownerPid: number | undefined
}> {}

const inUse = (dataDir: string, ownerPid: number | undefined): DataDirInUse =>
  new DataDirInUse({
    ownerPid,
    message:
      `data dir ${resolve(dataDir)} is in use by another capture serve` +
      `${ownerPid === undefined ? "" : ` (pid ${ownerPid})`}; stop it, or give this one another --data-dir`,
  })

/** The data dir or its lock could not be set up (permissions, a full disk, flock failing). */
export class DataDirLockError extends Data.TaggedError("DataDirLockError")<{ readonly message: string }> {}

const pidIn = (path: string): number | undefined => {
  try {
    const pid = Number(readFileSync(path, "utf8").trim())
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

const isRunning = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** Locks the open file `fd` with flock(1): true once locked, false if another process holds it. */
const flockNonBlocking = (flock: string, fd: number): Promise<boolean> =>
  new Promise((resolveLocked, reject) => {
    const child = spawn(
      flock,
      ["--exclusive", "--nonblock", "--conflict-exit-code", String(CONFLICT_EXIT), "3"],
      {
        stdio: ["ignore", "ignore", "pipe", fd],
      },
    )
    let stderr = ""
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
    })
    child.once("error", reject)
    child.once("exit", (code, signal) => {
      if (code === 0) resolveLocked(true)
      else if (code === CONFLICT_EXIT) resolveLocked(false)
      else reject(new Error(`flock ended with ${signal ?? `code ${code}`}: ${stderr.trim()}`))
    })
  })

/** A lock held: `fd` is the locked file where a child can share the lock by inheriting it. */
export interface DataDirLock {
  readonly fd: number | undefined
  readonly release: () => void
}

/** The flock(1) lock. */
const lockWithFlock = async (flock: string, dataDir: string): Promise<DataDirLock> => {
  const path = resolve(dataDir, LOCK_FILE)
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o644)
  let locked = false
  try {
    locked = await flockNonBlocking(flock, fd)
  } finally {
    if (!locked) closeSync(fd)
  }
  if (!locked) throw inUse(dataDir, pidIn(path))
  ftruncateSync(fd, 0)
  writeSync(fd, `${process.pid}\n`, 0)
  return { fd, release: () => closeSync(fd) }
}

/** The pid-file stand-in. */
const lockWithPidFile = (dataDir: string): DataDirLock => {
  const path = resolve(dataDir, PID_FILE)
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o644)
      writeSync(fd, `${process.pid}\n`)
      closeSync(fd)
      return {
        fd: undefined,
        release: () => {
          if (pidIn(path) === process.pid) rmSync(path, { force: true })
        },
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
    }
    const owner = pidIn(path)
    if (owner !== undefined && isRunning(owner)) throw inUse(dataDir, owner)
    // Its owner is gone (or it was never written in full): take it over.
    rmSync(path, { force: true })
  }
  throw inUse(dataDir, pidIn(path))
}

/**
 * Creates `dataDir` if needed and owns it for the enclosing scope; fails if another process does.
 * `flock` is the flock(1) binary, null for the pid-file stand-in.
 */
export const dataDirLock = (
  dataDir: string,
  flock: string | null = findOnPath("flock") ?? null,
): Effect.Effect<DataDirLock, DataDirInUse | DataDirLockError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        mkdirSync(dataDir, { recursive: true })
        return flock === null ? lockWithPidFile(dataDir) : await lockWithFlock(flock, dataDir)
      },
      catch: (error) =>
        error instanceof DataDirInUse
          ? error
          : new DataDirLockError({
              message: `cannot lock data dir ${dataDir}: ${error instanceof Error ? error.message : String(error)}`,
            }),
    }),
    (lock) => Effect.sync(lock.release),
  )
