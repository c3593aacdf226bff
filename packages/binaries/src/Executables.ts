/**
 * Finding executables on this machine.
 */
import { accessSync, constants } from "node:fs"
import { delimiter, join } from "node:path"

/** `name` as the platform spells an executable (`.exe` on Windows). */
export const executableName = (name: string): string => (process.platform === "win32" ? `${name}.exe` : name)

/** Whether `path` is a file this process may execute. */
export const isExecutable = (path: string): boolean => {
  try {
    accessSync(path, process.platform === "win32" ? constants.F_OK : constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** The first executable `name` on `PATH` (of `env`), if any. */
export const findOnPath = (name: string, env: NodeJS.ProcessEnv = process.env): string | undefined =>
  (env.PATH ?? "")
    .split(delimiter)
    .filter((dir) => dir !== "")
    .map((dir) => join(dir, executableName(name)))
    .find(isExecutable)
