/**
 * `pnpm test:deploy`: the deployment recipes under infra/ on this machine's podman. Builds the image
 * (infra/image/build.sh) and runs `capture serve` in it, and checks what its build context holds
 * (.containerignore); then starts infra/compose.yaml as a podman-compose project of its own (3 NATS
 * nodes, 2 gateways, 2 muxers, 2 AI workers), waits until the three nodes form one JetStream meta
 * group, checks that every stream is replicated three times, stops one NATS node, records a session
 * through one gateway until the other shows it exported and its MP4 downloads, rebuilds the
 * projections, and restores an offline backup of the three NATS volumes; then plays
 * infra/kubernetes/podman/topology.yaml with `podman kube play` and records and exports a session
 * there with one NATS node stopped. Slow (an image build, nine containers twice), so `npm test`
 * leaves it out.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { getFreePorts, LOOPBACK } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { pollUntil } from "./endToEnd.js"
import { probe } from "./media.js"

const ROOT = fileURLToPath(new URL("../../../", import.meta.url))
const COMPOSE_FILE = join(ROOT, "infra/compose.yaml")
const KUBE_FILE = join(ROOT, "infra/kubernetes/podman/topology.yaml")
const RECORDER = fileURLToPath(new URL("./fixtures/syntheticRecorder.mjs", import.meta.url))
const API_KEY = "sk-deploy-test-key-0123456789abcdef"
const PROJECT = `capture-deploy-${process.pid}`
const RECORD_MS = 6_000

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs a command to completion (never rejects on a non-zero exit: the caller checks `code`). */
const run = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly env?: Record<string, string>; readonly timeoutMs?: number } = {},
): Promise<Run> =>
  new Promise((resolve) => {
    execFile(
      command,
      [...args],
      {
        cwd: ROOT,
        env: { ...process.env, ...options.env },
        timeout: options.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1
        resolve({ code, stdout, stderr: stderr || (error?.message ?? "") })
      },
    )
  })

/** `run` that must exit 0; resolves with stdout. */
const runOk = async (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly env?: Record<string, string>; readonly timeoutMs?: number } = {},
): Promise<string> => {
  const result = await run(command, args, options)
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited ${result.code}:\n${result.stderr}\n${result.stdout}`)
  }
  return result.stdout
}

/** The status of GET `url`, or 0 when nothing answers. */
const statusOf = async (url: string): Promise<number> => {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5_000) })
    await response.arrayBuffer()
    return response.status
  } catch {
    return 0
  }
}

interface MetaView {
  readonly leader?: string | null
  readonly size?: number
  readonly current?: ReadonlyArray<string>
  readonly error?: string
}

/**
 * Each NATS node's view of the JetStream meta group (its `/jsz` on the monitoring port), asked by
 * Node in a Capture container on `network`: the leader, the group's size and the peers the
 * leader sees current. A node's log is no guide: nats-server 2.10 names the leader only on
 * some nodes (one that caught up from a snapshot never does).
 */
const metaViews = async (
  network: string,
  nodes: ReadonlyArray<string>,
): Promise<Record<string, MetaView>> => {
  const script = `const views = {}
    for (const node of ${JSON.stringify(nodes)}) {
      try {
        const response = await fetch("http://" + node + ":8222/jsz", { signal: AbortSignal.timeout(3000) })
        const meta = (await response.json()).meta_cluster ?? {}
        views[node] = {
          leader: meta.leader ?? null,
          size: meta.cluster_size ?? 0,
          current: (meta.replicas ?? []).filter((peer) => peer.current).map((peer) => peer.name),
        }
      } catch (error) { views[node] = { error: String(error) } }
    }
    console.log(JSON.stringify(views))`
  const output = await runOk("podman", [
    ...["run", "--rm", "--network", network, "--entrypoint", "node", image],
    ...["--input-type=module", "-e", script],
  ])
  return JSON.parse(output) as Record<string, MetaView>
}

/** Until every node names the same leader, which sees a group of all of them with the others current. */
const untilMetaGroupOfThree = (network: string, nodes: ReadonlyArray<string>) =>
  pollUntil(
    `${nodes.join(", ")} in one JetStream meta group`,
    () => metaViews(network, nodes),
    (views) => {
      const leader = views[nodes[0] as string]?.leader
      if (leader === undefined || leader === null || !nodes.includes(leader)) return false
      const ofLeader = views[leader]
      return (
        nodes.every((node) => views[node]?.leader === leader) &&
        ofLeader?.size === nodes.length &&
        ofLeader.current?.length === nodes.length - 1
      )
    },
    { timeoutMs: 180_000, intervalMs: 2_000 },
  )

let image: string
/** NATS ≥ 2.9.12 (infra/image/nats-image.sh): bookworm's 2.9.10 times out reads with a node down. */
let natsImage: string
let work: string

/** A JSON API call with the test's API key; resolves with `data`, throws on any status but 200. */
const call = async (base: string, method: "GET" | "POST", path: string, body?: object) => {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: {
      "x-access-token": API_KEY,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const envelope = (await response.json()) as { data?: Record<string, unknown> }
  if (response.status !== 200)
    throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(envelope)}`)
  return envelope.data ?? {}
}

/** Until every gateway answers `/readyz` with 200. */
const untilReady = async (gateways: ReadonlyArray<string>) => {
  for (const base of gateways) {
    await pollUntil(
      `/readyz of ${base}`,
      () => statusOf(`${base}/readyz`),
      (s) => s === 200,
      {
        timeoutMs: 300_000,
        intervalMs: 1_000,
      },
    )
  }
}

/**
 * Records a session through `recordVia` with the synthetic recorder (display and mic, RECORD_MS),
 * waits until `readVia` shows it exported, and checks the MP4 it downloads from there. Returns
 * the session's id.
 */
const recordAndExport = async (recordVia: string, readVia: string, children: ChildProcess[]) => {
  const created = await call(recordVia, "POST", "/collection/default/capture/session", {
    end_user_id: "user-deploy",
  })
  const session = created.id as string
  const token = (await call(recordVia, "POST", "/capture/session/token", { user_id: "user-deploy" }))
    .token as string
  const recorded = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        RECORDER,
        JSON.stringify({
          server: recordVia,
          token,
          session,
          spoolDir: join(work, `spool-${session}`),
          durationMs: RECORD_MS,
          channels: [
            { id: "display:1", type: "video", primary: true },
            { id: "mic:default", type: "audio", frequency: 440, beepFactor: 4 },
          ],
        }),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    )
    children.push(child)
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString()
    })
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString()
    })
    child.once("error", reject)
    child.once("close", (code) => resolve({ code, output }))
  })
  expect(recorded.code, recorded.output).toBe(0)

  // The other gateway sees the export the muxers made.
  const exported = await pollUntil(
    "the session exported, seen through the other gateway",
    () => call(readVia, "GET", `/collection/default/capture/session/${session}`),
    (view) => view.export_status === "exported" || view.export_status === "failed",
    { timeoutMs: 180_000, intervalMs: 1_000 },
  )
  expect(exported.export_status).toBe("exported")
  const video = await call(
    readVia,
    "GET",
    `/collection/default/video/${exported.exported_video_id as string}`,
  )
  const download = await fetch(video.download_url as string)
  expect(download.status).toBe(200)
  const file = join(work, `export-${session}.mp4`)
  await writeFile(file, new Uint8Array(await download.arrayBuffer()))
  const probed = await probe(file)
  expect(probed.streams.map((s) => s.codec_type).sort()).toEqual(["audio", "video"])
  // The recorded span, give or take the recorder's start and the last segment's cut.
  expect(Number(probed.format.duration)).toBeGreaterThan(RECORD_MS / 1000 - 2)
  expect(Number(probed.format.duration)).toBeLessThan(RECORD_MS / 1000 + 3)
  return session
}

/** Writes each container's logs to the temporary directory (`<name>.log`), for a failed run. */
const keepLogs = async (names: ReadonlyArray<string>) => {
  for (const name of names) {
    const logs = await run("podman", ["logs", name])
    await writeFile(join(tmpdir(), `${name}.log`), `${logs.stdout}${logs.stderr}`).catch(() => undefined)
  }
}

beforeAll(async () => {
  // Root podman and the local NATS image (what `npm test` prepares), then the Capture image.
  await runOk("bash", ["infra/podman/setup.sh"], { timeoutMs: 300_000 })
  const built = await runOk("bash", ["infra/image/build.sh"], { timeoutMs: 1_800_000 })
  image = built.trim().split("\n").at(-1) ?? ""
  expect(image).toMatch(/^localhost\/capture:/)
  natsImage = (await runOk("bash", ["infra/image/nats-image.sh"], { timeoutMs: 300_000 })).trim()
  work = await mkdtemp(join(tmpdir(), "capture-deploy-"))
}, 1_900_000)

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true })
})

describe("the image", () => {
  const name = `capture-deploy-serve-${process.pid}`
  afterAll(async () => {
    await run("podman", ["rm", "-f", "-t", "0", name])
  })

  it("runs capture serve (embedded NATS) as a non-root user, ready, and stops cleanly on SIGTERM", async () => {
    const [port] = await getFreePorts(1)
    await runOk("podman", ["run", "-d", "--name", name, "-p", `${LOOPBACK}:${port}:8080`, image])
    await pollUntil(
      "/readyz of capture serve in the image",
      () => statusOf(`http://${LOOPBACK}:${port}/readyz`),
      (s) => s === 200,
      {
        timeoutMs: 120_000,
        intervalMs: 500,
      },
    )
    expect((await runOk("podman", ["exec", name, "id", "-u"])).trim()).toBe("10001")
    expect((await runOk("podman", ["exec", name, "capture", "--version"])).trim()).toContain("0.1.0")
    for (const tool of ["ffmpeg", "ffprobe", "faad", "nats-server", "pocketsphinx_batch", "tesseract"]) {
      expect((await run("podman", ["exec", name, "sh", "-c", `command -v ${tool}`])).code, tool).toBe(0)
    }
    // The visual index's OCR has its English model.
    expect(await runOk("podman", ["exec", name, "tesseract", "--list-langs"])).toMatch(/^eng$/m)
    // The search index's native addon (better-sqlite3) was compiled for the image's Node.
    const sqlite = await runOk("podman", [
      "exec",
      name,
      "node",
      "-e",
      `const { createRequire } = require("node:module")
       const ai = require("node:fs").realpathSync("/opt/capture/node_modules/@capture/ai/package.json")
       const Database = createRequire(ai)("better-sqlite3")
       console.log(new Database(":memory:").prepare("select sqlite_version() as v").get().v)`,
    ])
    expect(sqlite.trim()).toMatch(/^3\.\d+\.\d+$/)
    // The console and the player have their Vite-built files.
    const page = await fetch(`http://${LOOPBACK}:${port}/console`)
    expect(page.status).toBe(200)
    const html = await page.text()
    // Every script and style the page names (the entry, its shared chunks: player.js is a small
    // entry importing the Player chunk) is served, none of them empty.
    const assets = [...html.matchAll(/(?:src|href)="(\/static\/[^"]+)"/g)].map((m) => m[1] as string)
    expect(assets).toContain("/static/console.js")
    for (const path of [...assets, "/static/player.js"]) {
      const asset = await fetch(`http://${LOOPBACK}:${port}${path}`)
      expect(asset.status, path).toBe(200)
      expect((await asset.text()).length, path).toBeGreaterThan(100)
    }

    await runOk("podman", ["stop", "-t", "60", name], { timeoutMs: 90_000 })
    const exitCode = (await runOk("podman", ["inspect", "--format", "{{.State.ExitCode}}", name])).trim()
    const logs = await run("podman", ["logs", name])
    expect(exitCode, logs.stdout).toBe("0")
    // Not a terminal: JSON lines, from the first start-up step to the last shutdown step.
    const lines = logs.stdout
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { level: string; message: string; role: string })
    expect(lines.every((line) => line.role === "all" && typeof line.level === "string")).toBe(true)
    const messages = lines.map((line) => line.message)
    expect(messages.some((message) => message.startsWith("ready"))).toBe(true)
    expect(messages.some((message) => message.startsWith("shutting down"))).toBe(true)
    // The first start made an API key, and no line shows it.
    expect(messages.some((message) => message.startsWith("first start: created an API key"))).toBe(true)
    expect(logs.stdout).not.toMatch(/sk-[A-Za-z0-9]/)
  }, 240_000)
})

describe("the image's build context", () => {
  const tag = `localhost/capture-deploy-context:${process.pid}`
  afterAll(async () => {
    await run("podman", ["rmi", "-f", tag])
  })

  it("holds the sources the build needs and no test, fixture, benchmark or document (.containerignore)", async () => {
    // What `COPY . .` of infra/image/Containerfile sees: the same context, the same ignore file.
    const containerfile = join(work, "Context.Containerfile")
    await writeFile(containerfile, "FROM localhost/capture-debian:bookworm-slim\nCOPY . /context\n")
    await runOk("podman", ["build", "-q", "-f", containerfile, "-t", tag, "."], { timeoutMs: 300_000 })
    const files = (await runOk("podman", ["run", "--rm", tag, "find", "/context", "-type", "f"]))
      .split("\n")
      .filter(Boolean)
      .map((file) => file.slice("/context/".length))
    for (const needed of [
      "package.json",
      "pnpm-lock.yaml",
      "pnpm-workspace.yaml",
      "tsconfig.base.json",
      "apps/cli/src/main.ts",
      "apps/cli/tsconfig.src.json",
      "packages/console/src/web/vite.config.ts",
      "bench/package.json",
    ]) {
      expect(files, needed).toContain(needed)
    }
    const unwanted = files.filter((file) =>
      /(^|\/)(test|node_modules|dist|build)\/|\.test\.ts$|\.md$|^(docs|infra|scripts|\.git)\/|^bench\/(?!package\.json$)/.test(
        file,
      ),
    )
    expect(unwanted).toEqual([])
  }, 360_000)
})

describe("the compose topology (podman-compose)", () => {
  let gateway1: string
  let gateway2: string
  let composeEnv: Record<string, string> = {}
  /** The session the recording test exported, for the restore test. */
  let exportedSession: string | undefined
  const children: ChildProcess[] = []
  const compose = (args: ReadonlyArray<string>, env: Record<string, string> = {}, timeoutMs = 600_000) =>
    run("podman-compose", ["-p", PROJECT, "-f", COMPOSE_FILE, ...args], { env, timeoutMs })
  /** podman-compose names a service's container `<project>_<service>_1`. */
  const container = (service: string) => `${PROJECT}_${service}_1`

  beforeAll(async () => {
    const [port1, port2] = await getFreePorts(2)
    gateway1 = `http://${LOOPBACK}:${port1}`
    gateway2 = `http://${LOOPBACK}:${port2}`
    composeEnv = {
      CAPTURE_IMAGE: image,
      NATS_IMAGE: natsImage,
      CAPTURE_API_KEY: API_KEY,
      CAPTURE_PUBLIC_URL: gateway1,
      GATEWAY_1_PORT: String(port1),
      GATEWAY_2_PORT: String(port2),
    }
    await up()
  }, 900_000)

  /**
   * `podman-compose up -d`, until both gateways are ready: the NATS nodes first, until all three
   * are in one JetStream meta group, then the Capture roles, as docs/deploy.md says to start it.
   */
  const up = async () => {
    const nats = await compose(["up", "-d", "nats-1", "nats-2", "nats-3"], composeEnv)
    expect(nats.code, `${nats.stderr}\n${nats.stdout}`).toBe(0)
    await untilMetaGroupOfThree(`${PROJECT}_default`, ["nats-1", "nats-2", "nats-3"])
    const started = await compose(["up", "-d"], composeEnv)
    expect(started.code, `${started.stderr}\n${started.stdout}`).toBe(0)
    await untilReady([gateway1, gateway2])
  }

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL")
    // What each container said, for a failed run.
    const ps = await run("podman", [
      "ps",
      "-a",
      "--filter",
      `label=io.podman.compose.project=${PROJECT}`,
      "--format",
      "{{.Names}}",
    ])
    await keepLogs(ps.stdout.split("\n").filter(Boolean))
    await compose(["down", "-v", "-t", "5"], {}, 300_000)
    // The restore's volumes were made by hand, and podman-compose leaves them and the network.
    for (const n of [1, 2, 3]) await run("podman", ["volume", "rm", "-f", `${PROJECT}_nats-${n}-data`])
    await run("podman", ["network", "rm", "-f", `${PROJECT}_default`])
  }, 400_000)

  it("replicates every stream and bucket on the three NATS nodes", async () => {
    // From inside a gateway container, with the image's own nats.js.
    const listing = await runOk("podman", [
      "exec",
      "-w",
      "/opt/capture",
      container("gateway-1"),
      "node",
      "--input-type=module",
      "-e",
      `import { connect } from "@nats-io/transport-node"
       import { jetstreamManager } from "@nats-io/jetstream"
       const nc = await connect({ servers: process.env.NATS_URL.split(",") })
       const streams = []
       for await (const info of (await jetstreamManager(nc)).streams.list()) streams.push([info.config.name, info.config.num_replicas])
       console.log(JSON.stringify(streams))
       await nc.close()`,
    ])
    const streams = new Map(JSON.parse(listing) as Array<[string, number]>)
    expect([...streams.keys()]).toEqual(
      expect.arrayContaining(["CAPTURE_EVENTS", "KV_capture_sessions", "KV_capture_accounts"]),
    )
    expect([...streams.entries()].filter(([, replicas]) => replicas !== 3)).toEqual([])
  }, 60_000)

  it("records a session through one gateway and exports it while one NATS node is stopped", async () => {
    await runOk("podman", ["stop", "-t", "10", container("nats-2")])
    expect(
      (await runOk("podman", ["inspect", "--format", "{{.State.Running}}", container("nats-2")])).trim(),
    ).toBe("false")

    exportedSession = await recordAndExport(gateway1, gateway2, children)

    // docs/deploy.md's rebuild, from a gateway container, still with one node down.
    const rebuilt = await runOk(
      "podman",
      ["exec", container("gateway-1"), "capture", "projections", "rebuild"],
      {
        timeoutMs: 120_000,
      },
    )
    expect(rebuilt).toMatch(/rebuilt [1-9]\d* sessions/)
  }, 400_000)

  it("restores an offline backup of the three NATS volumes into new volumes (docs/deploy.md)", async () => {
    expect(exportedSession).toBeDefined()
    const volume = (n: number) => `${PROJECT}_nats-${n}-data`
    const stopped = await compose(["stop", "-t", "30"])
    expect(stopped.code, stopped.stderr).toBe(0)
    for (const n of [1, 2, 3])
      await runOk("podman", ["volume", "export", volume(n), "-o", join(work, `nats-${n}.tar`)])
    const down = await compose(["down", "-v", "-t", "5"])
    expect(down.code, down.stderr).toBe(0)
    expect((await run("podman", ["volume", "exists", volume(1)])).code).not.toBe(0)
    for (const n of [1, 2, 3]) {
      await runOk("podman", ["volume", "create", volume(n)])
      await runOk("podman", ["volume", "import", volume(n), join(work, `nats-${n}.tar`)])
    }
    await up()

    const view = await pollUntil(
      "the restored session, through the restored cluster",
      () =>
        call(gateway2, "GET", `/collection/default/capture/session/${exportedSession as string}`).catch(
          (): Record<string, unknown> => ({}),
        ),
      (found) => found.export_status === "exported",
      { timeoutMs: 120_000, intervalMs: 1_000 },
    )
    const video = await call(gateway1, "GET", `/collection/default/video/${view.exported_video_id as string}`)
    const download = await fetch(video.download_url as string)
    expect(download.status).toBe(200)
    expect((await download.arrayBuffer()).byteLength).toBeGreaterThan(10_000)
  }, 900_000)
})

describe("the Kubernetes topology (podman kube play)", () => {
  const network = `capture-kube-${process.pid}`
  const manifest = () => join(work, "topology.yaml")
  const children: ChildProcess[] = []
  let gateway1: string
  let gateway2: string

  beforeAll(async () => {
    const [port1, port2] = await getFreePorts(2)
    gateway1 = `http://${LOOPBACK}:${port1}`
    gateway2 = `http://${LOOPBACK}:${port2}`
    // The manifest as docs/deploy.md says to edit it: the images, the host ports, the env.
    const yaml = (await readFile(KUBE_FILE, "utf8"))
      .replaceAll("docker.io/library/nats:2.10-alpine", natsImage)
      .replaceAll("localhost/capture:latest", image)
      .replaceAll("hostPort: 8081", `hostPort: ${port1}`)
      .replaceAll("hostPort: 8082", `hostPort: ${port2}`)
      .replaceAll('"http://127.0.0.1:8081"', JSON.stringify(gateway1))
      .replaceAll('CAPTURE_API_KEY, value: ""', `CAPTURE_API_KEY, value: ${JSON.stringify(API_KEY)}`)
    expect(yaml).toContain(`hostPort: ${port2}`)
    await writeFile(manifest(), yaml)
    await runOk("podman", ["network", "create", network])
    const played = await run("podman", ["kube", "play", "--network", network, manifest()], {
      timeoutMs: 600_000,
    })
    expect(played.code, `${played.stderr}\n${played.stdout}`).toBe(0)
    await untilMetaGroupOfThree(network, ["nats-1", "nats-2", "nats-3"])
    await untilReady([gateway1, gateway2])
  }, 900_000)

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL")
    await keepLogs(
      ["nats-1", "nats-2", "nats-3", "gateway-1", "gateway-2", "muxer-1", "muxer-2", "ai-1"].map(
        (pod) => `${pod}-${pod.startsWith("nats") ? "nats" : "capture"}`,
      ),
    )
    await run("podman", ["kube", "down", manifest()], { timeoutMs: 300_000 })
    for (const n of [1, 2, 3]) await run("podman", ["volume", "rm", "-f", `nats-${n}-data`])
    await run("podman", ["network", "rm", "-f", network])
  }, 400_000)

  it("records a session through one gateway and exports it while one NATS node is stopped", async () => {
    await runOk("podman", ["stop", "-t", "10", "nats-2-nats"])
    expect((await runOk("podman", ["inspect", "--format", "{{.State.Running}}", "nats-2-nats"])).trim()).toBe(
      "false",
    )
    await recordAndExport(gateway1, gateway2, children)
  }, 400_000)
})
