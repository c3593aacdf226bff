import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { findOnPath } from "@capture/binaries"
import { Effect, Exit, Scope } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { dataDirLock, LOCK_FILE, PID_FILE } from "../src/serve/DataDirLock.js"

const dirs: Array<string> = []
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "capture-lock-"))
  dirs.push(dir)
  return dir
}

/** Takes the lock in a scope of its own; resolves with the failure tag, or the scope to release it. */
const take = async (dataDir: string, flock: string | null) => {
  const scope = Effect.runSync(Scope.make())
  const exit = await Effect.runPromiseExit(Scope.provide(scope)(dataDirLock(dataDir, flock)))
  if (Exit.isSuccess(exit)) return { release: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
  const error = exit.cause.reasons[0]
  return { failure: error?._tag === "Fail" ? (error.error as { _tag: string; message: string }) : undefined }
}

/** The pid of a process that has exited. */
const deadPid = (): number => spawnSync(process.execPath, ["-e", ""]).pid ?? 0

// flock(1) is util-linux's, on every Debian; elsewhere both rows test the stand-in.
const flock = findOnPath("flock") ?? null

describe.each([
  ["flock(1)", flock, flock === null ? PID_FILE : LOCK_FILE],
  ["the pid file", null, PID_FILE],
] as const)("dataDirLock with %s", (_name, binary, file) => {
  it("is exclusive, names its owner, and is free again once released", async () => {
    const dataDir = join(tempDir(), "nested", "data")
    const first = await take(dataDir, binary)
    expect(first.failure).toBeUndefined()
    expect(readFileSync(join(dataDir, file), "utf8").trim()).toBe(String(process.pid))
    const second = await take(dataDir, binary)
    expect(second.failure).toMatchObject({ _tag: "DataDirInUse" })
    expect(second.failure?.message).toContain(
      `data dir ${dataDir} is in use by another capture serve (pid ${process.pid})`,
    )
    await first.release?.()
    const third = await take(dataDir, binary)
    expect(third.failure).toBeUndefined()
    await third.release?.()
  })
})

describe("the pid-file stand-in", () => {
  it("takes over a file whose process is gone", async () => {
    const dataDir = tempDir()
    writeFileSync(join(dataDir, PID_FILE), `${deadPid()}\n`)
    const taken = await take(dataDir, null)
    expect(taken.failure).toBeUndefined()
    expect(readFileSync(join(dataDir, PID_FILE), "utf8").trim()).toBe(String(process.pid))
    await taken.release?.()
  })
})
