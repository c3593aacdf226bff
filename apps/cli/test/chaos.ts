/**
 * Tools of the chaos suite (`Chaos.chaos.test.ts`): a seeded random source, a TCP proxy on
 * 127.0.0.1 in front of the gateways whose network can be cut, and `capture` processes (serve
 * roles, recorders) whose output goes to a log file and that can be SIGKILLed and started again.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createWriteStream, type WriteStream } from "node:fs"
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net"
import { LOOPBACK } from "@capture/testkit"
import { MAIN } from "./cli.js"

/** mulberry32: a small seeded generator, so a failing run can be replayed with its seed. */
export const seededRandom = (seed: number) => {
  let state = seed >>> 0
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
  return {
    next,
    /** An integer in [min, max]. */
    int: (min: number, max: number): number => min + Math.floor(next() * (max - min + 1)),
    pick: <A>(items: ReadonlyArray<A>): A => {
      const item = items[Math.floor(next() * items.length)]
      if (item === undefined) throw new Error("pick from an empty list")
      return item
    },
    shuffle: <A>(items: ReadonlyArray<A>): Array<A> => {
      const copy = [...items]
      for (let i = copy.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1))
        ;[copy[i], copy[j]] = [copy[j] as A, copy[i] as A]
      }
      return copy
    },
  }
}
export type SeededRandom = ReturnType<typeof seededRandom>

/**
 * A TCP proxy on 127.0.0.1 that hands each connection to the first gateway port that accepts it
 * (round robin, so a killed gateway is skipped). `cut()` breaks every open connection and holds new
 * ones unanswered, as a dead network would; `restore()` drops the held ones and forwards again.
 */
export interface CuttableProxy {
  readonly url: string
  readonly cut: () => void
  readonly restore: () => void
  readonly close: () => Promise<void>
}

export const startCuttableProxy = async (ports: () => ReadonlyArray<number>): Promise<CuttableProxy> => {
  const open = new Set<Socket>()
  const held = new Set<Socket>()
  let cut = false
  let turn = 0
  const forward = (client: Socket, tries: number): void => {
    const candidates = ports()
    if (tries >= candidates.length || client.destroyed) {
      client.destroy()
      return
    }
    const port = candidates[turn++ % candidates.length] ?? 0
    const upstream = tcpConnect({ host: LOOPBACK, port })
    let connected = false
    upstream.once("connect", () => {
      connected = true
      if (cut || client.destroyed) {
        upstream.destroy()
        client.destroy()
        return
      }
      open.add(client)
      open.add(upstream)
      client.pipe(upstream)
      upstream.pipe(client)
      client.resume()
    })
    upstream.on("error", () => {
      if (!connected) forward(client, tries + 1)
      else client.destroy()
    })
    upstream.on("close", () => {
      open.delete(upstream)
      if (connected) client.destroy()
    })
  }
  const server: Server = createServer({ pauseOnConnect: true }, (client) => {
    client.on("error", () => {})
    client.on("close", () => {
      open.delete(client)
      held.delete(client)
    })
    if (cut) held.add(client)
    else forward(client, 0)
  })
  server.listen(0, LOOPBACK)
  await new Promise<void>((resolve) => server.once("listening", () => resolve()))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  return {
    url: `http://${LOOPBACK}:${port}`,
    cut: () => {
      cut = true
      for (const socket of open) socket.destroy()
    },
    restore: () => {
      cut = false
      for (const socket of held) socket.destroy()
    },
    close: () => {
      for (const socket of [...open, ...held]) socket.destroy()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}

/** How a `capture` process ended. */
export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/**
 * `capture <args>` that can be started again after it ended: each run's output is appended to
 * `logFile` under a header, and `kill()` SIGKILLs the current run.
 */
export class CaptureProcess {
  private child: ChildProcess | undefined
  private exit: Promise<Exit> = Promise.resolve({ code: null, signal: null })
  private readonly log: WriteStream
  runs = 0
  /** The last lines the current or last run printed. */
  lastLines: string[] = []

  constructor(
    readonly name: string,
    logFile: string,
    private readonly env: Record<string, string>,
  ) {
    this.log = createWriteStream(logFile, { flags: "a" })
  }

  get running(): boolean {
    return this.child !== undefined
  }

  get pid(): number | undefined {
    return this.child?.pid
  }

  /** Starts a run; resolves with its end. */
  start(args: ReadonlyArray<string>): Promise<Exit> {
    if (this.child !== undefined) throw new Error(`${this.name} is already running`)
    this.runs += 1
    this.lastLines = []
    this.log.write(`\n==== ${new Date().toISOString()} run ${this.runs}: capture ${args.join(" ")}\n`)
    const { NATS_URL: _ignored, ...rest } = process.env
    const child = spawn(process.execPath, [MAIN, ...args], {
      env: { ...rest, CAPTURE_LOG_FORMAT: "pretty", ...this.env },
      stdio: ["ignore", "pipe", "pipe"],
    })
    this.child = child
    // Each line stamped with the time, so the logs of every process can be laid side by side.
    for (const stream of [child.stdout, child.stderr]) {
      let partial = ""
      stream?.on("data", (chunk: Buffer) => {
        const lines = (partial + chunk.toString("utf8")).split("\n")
        partial = lines.pop() ?? ""
        for (const line of lines) this.log.write(`${new Date().toISOString()} ${line}\n`)
        this.lastLines = [...this.lastLines, ...lines].slice(-20)
      })
    }
    this.exit = new Promise((resolve) =>
      child.once("exit", (code, signal) => {
        if (this.child === child) this.child = undefined
        this.log.write(`\n==== ${new Date().toISOString()} exited ${signal ?? code}\n`)
        resolve({ code, signal })
      }),
    )
    return this.exit
  }

  /** SIGKILLs the current run (if any) and waits until it is gone. */
  async kill(): Promise<void> {
    const child = this.child
    if (child === undefined) return
    child.kill("SIGKILL")
    await this.exit
  }

  async close(): Promise<void> {
    await this.kill()
    await new Promise<void>((resolve) => this.log.end(() => resolve()))
  }
}

/** Whether `GET /readyz` on `port` answers 200 now. */
export const isReady = async (port: number): Promise<boolean> => {
  try {
    const response = await fetch(`http://${LOOPBACK}:${port}/readyz`, { signal: AbortSignal.timeout(2_000) })
    await response.arrayBuffer()
    return response.status === 200
  } catch {
    return false
  }
}

/**
 * Polls `GET /readyz` on `port` until it answers 200; resolves false if `alive` turns false first
 * (the process was killed again while it started).
 */
export const waitUntilReady = async (
  port: number,
  timeoutMs: number,
  what: string,
  alive: () => boolean = () => true,
): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (!alive()) return false
    try {
      const response = await fetch(`http://${LOOPBACK}:${port}/readyz`, {
        signal: AbortSignal.timeout(2_000),
      })
      await response.arrayBuffer()
      if (response.status === 200) return true
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${what} not ready on :${port} within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}
