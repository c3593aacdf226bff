/**
 * nats-server child processes for tests: the shared runner from @capture/nats-server, also killed when
 * the test process exits with the server still running (a suite that forgot `stop()`, a hook timeout).
 */
import { NatsServerProcess } from "@capture/nats-server"
import { onProcessExit } from "./Cleanup.js"

export { resolveNatsServerBinary } from "@capture/nats-server"

/** A test nats-server that can be started and stopped any number of times. */
export const natsProcess = (name: string, bin: string, args: ReadonlyArray<string>): NatsServerProcess =>
  new NatsServerProcess({ name, bin, args, onSpawn: (child) => onProcessExit(() => child.kill("SIGKILL")) })
