/** CPU time of processes, read from /proc (Linux); 0 and no children elsewhere. */
import { readdirSync, readFileSync } from "node:fs"

/** Linux reports CPU time in ticks of 1/100 s. */
const TICK_MS = 10

const childrenOf = (pid: number): Array<number> => {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((task) =>
      readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").split(" ").filter(Boolean).map(Number),
    )
  } catch {
    return []
  }
}

/** Every process below `pid` (children, their children, …). */
export const descendants = (pid: number): Array<number> => {
  const found: Array<number> = []
  const pending = [pid]
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    for (const child of childrenOf(next)) {
      found.push(child)
      pending.push(child)
    }
  }
  return found
}

/** User + system CPU time of `pid` in ms, at 10 ms resolution (0 once it is gone). */
export const cpuMs = (pid: number): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // Fields after the command name, which may itself hold spaces: utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS
  } catch {
    return 0
  }
}

/** CPU ms of `pids` together. */
export const totalCpuMs = (pids: ReadonlyArray<number>): number =>
  pids.reduce((sum, pid) => sum + cpuMs(pid), 0)

/**
 * CPU ms of `pid`'s children that have exited and been waited for (cutime + cstime): what a
 * process's short-lived children (ffmpeg runs) used, which `descendants` no longer lists.
 */
export const reapedChildrenCpuMs = (pid: number): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[13]) + Number(fields[14])) * TICK_MS
  } catch {
    return 0
  }
}

/**
 * CPU ms of `pid` and everything it started, the children that already exited included: each
 * live process's own time plus that of the children it has reaped (a child's reaped children
 * count towards it, and it towards its parent once reaped, so nothing is counted twice).
 */
export const treeCpuMs = (pid: number): number =>
  [pid, ...descendants(pid)].reduce((sum, p) => sum + cpuMs(p) + reapedChildrenCpuMs(p), 0)
