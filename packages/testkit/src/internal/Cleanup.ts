/**
 * Last-resort cleanup when the test process goes away with servers still running (a suite that forgot
 * `stop()`, a hook timeout, Ctrl-C): kills nats-server children and removes containers so nothing survives
 * the run. Only synchronous work can run here, so each cleanup must be synchronous. (SIGKILL runs nothing;
 * child processes are covered for that case by their parent-death signal, see @capture/nats-server.)
 */

const cleanups = new Set<() => void>()
let installed = false

/** Registers `cleanup` to run if the process exits or is terminated; returns the unregister function. */
export const onProcessExit = (cleanup: () => void): (() => void) => {
  install()
  cleanups.add(cleanup)
  return () => {
    cleanups.delete(cleanup)
  }
}

const runAll = (): void => {
  for (const cleanup of [...cleanups]) {
    cleanups.delete(cleanup)
    try {
      cleanup()
    } catch {
      // Best effort: one failing cleanup must not keep the others from running.
    }
  }
}

const install = (): void => {
  if (installed) return
  installed = true
  process.on("exit", runAll)
  // A signal skips 'exit' (vitest stops its fork workers with SIGTERM), so clean up on those too. When no
  // one else handles the signal, re-raise it so the process still dies the way it would have without us.
  // Prepended so it runs (and is removed) first: listeners like signal-exit's (a testcontainers dependency)
  // only re-raise when they see no other listener, so they must not see this one.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.prependOnceListener(signal, () => {
      runAll()
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
    })
  }
}

/** Whether a local process exists (signal 0 only checks; EPERM means it exists but is not ours). */
export const isProcessAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ESRCH"
  }
}
