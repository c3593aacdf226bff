/**
 * Scratch directories for nats-server stores and configs, removed by `remove()` or, if the test process
 * dies first, by the process-exit cleanup. A SIGKILLed process runs no cleanup, so directory names carry the
 * owner's pid and the first use in a later process deletes those whose owner is gone: runs do not pile up
 * JetStream stores in /tmp.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { isProcessAlive, onProcessExit } from "./Cleanup.js"

export interface TempDir {
  readonly path: string
  /** Deletes the directory and everything in it. Idempotent. */
  remove(): Promise<void>
}

/** A new directory under the OS temp dir, named `capture-nats-<kind>-<pid>-XXXXXX`. */
export const makeTempDir = (kind: string): TempDir => {
  sweepOrphans()
  const path = mkdtempSync(join(tmpdir(), `capture-nats-${kind}-${process.pid}-`))
  // May run just after a server using the directory was SIGKILLed and is still exiting; hence the retries.
  const unregister = onProcessExit(() => rmSync(path, { recursive: true, force: true, maxRetries: 5 }))
  let removed: Promise<void> | undefined
  return {
    path,
    remove: () => {
      removed ??= rm(path, { recursive: true, force: true, maxRetries: 5 }).then(unregister)
      return removed
    },
  }
}

let swept = false

/** Deletes directories left by test processes that no longer exist. */
const sweepOrphans = (): void => {
  if (swept) return
  swept = true
  for (const name of readdirSync(tmpdir())) {
    const owner = /^capture-nats-[a-z]+-(\d+)-/.exec(name)?.[1]
    if (owner === undefined || isProcessAlive(Number(owner))) continue
    try {
      rmSync(join(tmpdir(), name), { recursive: true, force: true })
    } catch {
      // Someone else's to clean up (another user's, or being removed concurrently).
    }
  }
}
