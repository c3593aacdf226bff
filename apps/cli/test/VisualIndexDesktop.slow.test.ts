/**
 * The visual index on a real screen: an Xvfb display showing an xterm with known text, recorded
 * by `capture record` (x11grab, as on a desktop) against `capture serve`; the display's visual
 * index reads the words within one batch window, search finds an on-screen word with a time range
 * inside the recording, and another account's search finds nothing.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { tesseractAvailable } from "@capture/ai"
import { AccountStore } from "@capture/gateway"
import { findOnPath } from "@capture/recorder"
import { type NatsServerHandle, startNatsServer, startXvfb } from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type CliProcess, killIfRunning, startCli } from "./cli.js"
import { type CaptureServer, pollUntil, startCaptureServer } from "./endToEnd.js"

const LINES = ["Quarterly budget review", "Invoice overdue reminder"]
const RECORD_SECONDS = 14
const BATCH = { time: 2, frame_count: 5 }

const children: Array<ChildProcess> = []
let display: string
let nats: NatsServerHandle
let nc: NatsConnection
let server: CaptureServer
let recorder: CliProcess | undefined
let work: string

const tools = ["Xvfb", "xterm", "tesseract"].filter((tool) => findOnPath(tool) === undefined)

beforeAll(async () => {
  if (tools.length > 0) return
  work = await mkdtemp(join(tmpdir(), "capture-visual-desktop-"))
  display = (await startXvfb(children)).display
  // A white xterm in DejaVu Sans Mono 24 pt showing the lines (and its title), left open.
  const script = `printf '${LINES.join("\\n")}\\n'; exec sleep 600`
  const xterm = spawn(
    "xterm",
    [
      ...["-geometry", "60x8+40+40", "-fa", "DejaVu Sans Mono", "-fs", "24"],
      ...["-bg", "white", "-fg", "black", "-T", "Capture notes", "-e", "sh", "-c", script],
    ],
    { env: { ...process.env, DISPLAY: display, HOME: work }, stdio: "ignore" },
  )
  children.push(xterm)
  nats = await startNatsServer()
  nc = await connect({ servers: nats.url })
  server = await startCaptureServer(nats.url)
}, 120_000)
afterAll(async () => {
  await killIfRunning(recorder)
  await killIfRunning(server?.process)
  await nc?.close()
  await nats?.stop()
  for (const child of children.reverse()) child.kill("SIGKILL")
  if (work !== undefined) await rm(work, { recursive: true, force: true })
})

const words = (text: string) => text.toLowerCase().match(/[a-z]+/g) ?? []

describe.skipIf(!tesseractAvailable())(
  "a visual index of a real screen (Xvfb, xterm, capture record)",
  () => {
    it("reads the window's words within one batch window, and search finds them in this account only", async () => {
      expect(tools, "needs bash scripts/bootstrap.sh --test").toEqual([])
      const session = (
        await server.data("POST", "/collection/default/capture/session", { end_user_id: "user-screen" })
      ).id as string
      const token = (await server.data("POST", "/capture/session/token", { user_id: "user-screen" }))
        .token as string
      const spawnedAt = Date.now()
      recorder = startCli(
        [
          ...["record", "--server", server.base, "--token", token, "--session", session],
          ...["--channels", "display:1", "--duration", `${RECORD_SECONDS}s`, "--spool", join(work, "spool")],
        ],
        { DISPLAY: display, HOME: work },
      )
      // The index starts as soon as the display's rtstream exists (its first segment is stored).
      const view = await pollUntil(
        "the display's rtstream",
        () => server.data("GET", `/collection/default/capture/session/${session}`),
        (v) => (v.rtstreams as ReadonlyArray<unknown>).length === 1,
        { timeoutMs: 60_000, intervalMs: 200 },
      )
      const rtstreamId = (view.rtstreams as ReadonlyArray<{ rtstream_id: string }>)[0]?.rtstream_id ?? ""
      const index = await server.data("POST", `/rtstream/${rtstreamId}/index/scene`, {
        extraction_type: "time_based",
        extraction_config: BATCH,
        prompt: "What is on screen?",
      })
      const indexId = index.rtstream_index_id as string
      const exit = await recorder.exited
      const stoppedAt = Date.now()
      expect(exit.code, recorder.output()).toBe(0)

      // Scenes of one batch window (2 s) within the recording, the first holding every word.
      type Scene = { start: number; end: number; text: string }
      const scenes = await pollUntil(
        "a scene with the window's words",
        async () =>
          (await server.data("GET", `/rtstream/${rtstreamId}/index/scene/${indexId}?page_size=1000`))
            .scene_index_records as ReadonlyArray<Scene>,
        (found) => found.length > 0,
        { timeoutMs: 120_000, intervalMs: 500 },
      )
      const first = scenes[0] as Scene
      for (const word of words(LINES.join(" "))) expect(words(first.text), first.text).toContain(word)
      for (const scene of scenes) {
        expect(scene.end - scene.start).toBeLessThanOrEqual(BATCH.time + 0.001)
        expect(scene.start * 1000).toBeGreaterThanOrEqual(spawnedAt)
        expect(scene.end * 1000).toBeLessThanOrEqual(stoppedAt)
      }
      // A still screen: read once, the same text in every scene.
      expect(new Set(scenes.map((s) => s.text)).size).toBe(1)

      // Search finds the on-screen word, with a time range inside the recording.
      const results = async (path: string, key: string) => {
        const response = await fetch(`${server.base}${path}`, {
          method: "POST",
          headers: { "x-access-token": key, "content-type": "application/json" },
          body: JSON.stringify({ query: "overdue invoice" }),
        })
        return {
          status: response.status,
          results: (
            (await response.json()) as { data?: { results?: ReadonlyArray<Scene & Record<string, unknown>> } }
          ).data?.results,
        }
      }
      const found = await pollUntil(
        "search results",
        () => results(`/rtstream/${rtstreamId}/search`, server.apiKey),
        (answer) => (answer.results?.length ?? 0) > 0,
        { timeoutMs: 10_000 },
      )
      const best = found.results?.[0]
      expect(best).toMatchObject({ rtstream_id: rtstreamId, scene_index_id: indexId })
      expect(words(best?.text ?? "")).toContain("overdue")
      expect((best?.start ?? 0) * 1000).toBeGreaterThanOrEqual(spawnedAt)
      expect((best?.end ?? 0) * 1000).toBeLessThanOrEqual(stoppedAt)
      const inCollection = await results("/rtstream/collection/default/search", server.apiKey)
      expect(inCollection.results?.some((r) => r.rtstream_id === rtstreamId)).toBe(true)

      // Another account's key: its collection search finds nothing, this rtstream is not its own.
      const accounts = await AccountStore.open(nc)
      const other = await accounts.createAccount("other")
      const { key } = await accounts.createApiKey(other.id)
      accounts.close()
      expect(await results("/rtstream/collection/default/search", key)).toEqual({ status: 200, results: [] })
      expect((await results(`/rtstream/${rtstreamId}/search`, key)).status).toBe(404)
    }, 300_000)
  },
)
