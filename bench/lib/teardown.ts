/**
 * What a benchmark started must not outlive it. A `Teardown` stops what was added to it, newest
 * first: at the end of the run (the caller's `finally`), and on SIGINT or SIGTERM, which would
 * otherwise end the process without running any `finally`. Whatever is still running below this
 * process when it exits (a stop that failed) is then killed by pid.
 */
import { descendants } from "./processCpu.js"

const live = new Set<Teardown>()

/** Kills every process still running below this one; only its own children and theirs. */
const killLeftovers = () => {
  for (const pid of descendants(process.pid)) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // Already gone.
    }
  }
}

let interrupted = false
const onSignal = (signal: NodeJS.Signals) => {
  if (interrupted) {
    // A second Ctrl-C: no more waiting.
    killLeftovers()
    process.exit(130)
  }
  interrupted = true
  console.error(`\n${signal}: stopping what the benchmark started…`)
  void Promise.all([...live].map((teardown) => teardown.run())).finally(() => {
    killLeftovers()
    process.exit(signal === "SIGINT" ? 130 : 143)
  })
}

let installed = false
const install = () => {
  if (installed) return
  installed = true
  process.once("SIGINT", onSignal)
  process.once("SIGTERM", onSignal)
  process.once("exit", killLeftovers)
}

/** Stops, newest first, what was added; errors are reported, never thrown, so every stop runs. */
export class Teardown {
  #stops: Array<{ readonly name: string; readonly stop: () => Promise<void> }> = []
  #running: Promise<void> | undefined

  constructor() {
    install()
    live.add(this)
  }

  /** Stops `resource` at the end; returns it. */
  add<A extends { readonly stop: () => Promise<void> }>(name: string, resource: A): A {
    this.#stops.push({ name, stop: () => resource.stop() })
    return resource
  }

  /**
   * Runs every stop added so far, each once. A run already under way (an interrupt's, say) is
   * joined, so whoever awaits it resumes only once everything has stopped.
   */
  run(): Promise<void> {
    this.#running ??= this.#stopAll().finally(() => {
      this.#running = undefined
    })
    return this.#running
  }

  async #stopAll(): Promise<void> {
    for (let next = this.#stops.pop(); next !== undefined; next = this.#stops.pop()) {
      try {
        await next.stop()
      } catch (error) {
        console.error(`stopping ${next.name}: ${error instanceof Error ? error.message : String(error)}`)
      }
    }
  }
}
