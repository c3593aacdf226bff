/**
 * The baseline of bench:ingest: a minimal node:http server in a child process of its own (as
 * `capture serve` is), taking the same segment uploads. It reads each body, checks its SHA-256
 * against `x-segment-sha256` (the least any store must do) and answers a small JSON document.
 * Nothing is stored.
 */
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { createServer } from "node:http"
import { fileURLToPath } from "node:url"

export interface RawUploadServer {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string
  readonly pid: number
  /** SIGTERM, then SIGKILL if it has not exited within 5 s. */
  readonly stop: () => Promise<void>
}

/** Runs the server in this process; prints `listening <port>` once it listens. */
const serve = () => {
  const server = createServer((req, res) => {
    const hash = createHash("sha256")
    let bytes = 0
    req.on("data", (chunk: Buffer) => {
      hash.update(chunk)
      bytes += chunk.length
    })
    req.on("end", () => {
      const ok = req.method === "PUT" && hash.digest("hex") === req.headers["x-segment-sha256"]
      const body = JSON.stringify(
        ok ? { success: true, data: { bytes, duplicate: false } } : { success: false, message: "checksum" },
      )
      res.writeHead(ok ? 200 : 400, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
      })
      res.end(body)
    })
  })
  server.keepAliveTimeout = 60_000
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    if (address === null || typeof address === "string") throw new Error("no port")
    console.log(`listening ${address.port}`)
  })
  process.once("SIGTERM", () => server.close(() => process.exit(0)))
}

/** Starts the server as a child process (this file, run with `serve`). */
export const startRawUploadServer = async (): Promise<RawUploadServer> => {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "serve"], {
    stdio: ["ignore", "pipe", "inherit"],
  })
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill("SIGTERM")
    const killer = setTimeout(() => child.kill("SIGKILL"), 5_000)
    await exited
    clearTimeout(killer)
  }
  try {
    let timer: NodeJS.Timeout | undefined
    const port = await new Promise<number>((resolve, reject) => {
      let text = ""
      child.stdout.on("data", (chunk: Buffer) => {
        text += chunk.toString("utf8")
        const match = /listening (\d+)/.exec(text)
        if (match !== null) resolve(Number(match[1]))
      })
      child.once("exit", (code) => reject(new Error(`the raw upload server exited (${code}): ${text}`)))
      timer = setTimeout(() => reject(new Error("the raw upload server did not listen within 10 s")), 10_000)
    }).finally(() => clearTimeout(timer))
    if (child.pid === undefined) throw new Error("the raw upload server has no pid")
    return { url: `http://127.0.0.1:${port}`, pid: child.pid, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === "serve") serve()
