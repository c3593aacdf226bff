/**
 * nats-server child processes for tests: the shared runner from @capture/nats-server, also killed when
 * the test process exits with the server still running (a suite that forgot `stop()`, a hook timeout).
 */
import { appendFileSync } from "node:fs"
import { NatsServerProcess } from "@capture/nats-server"
import { onProcessExit } from "./Cleanup.js"

export { resolveNatsServerBinary } from "@capture/nats-server"

/** A test nats-server that can be started and stopped any number of times; its log appended to `logFile`. */
export const natsProcess = (
  name: string,
  bin: string,
  args: ReadonlyArray<string>,
  logFile?: string,
): NatsServerProcess =>
  new NatsServerProcess({
    name,
    bin,
    args,
    onSpawn: (child) => onProcessExit(() => child.kill("SIGKILL")),
    ...(logFile === undefined ? {} : { onLine: (line: string) => appendLine(logFile, line) }),
  })

/** A log line kept where the caller asked; a folder removed meanwhile (the suite ended) is not an error. */
const appendLine = (file: string, line: string): void => {
  try {
    appendFileSync(file, `${line}\n`)
  } catch {
    // gone with its folder
  }
}
