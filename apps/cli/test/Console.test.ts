/**
 * The browser side against a real `capture serve`, in a real headless Chromium: the self-hosted
 * player (hls.js from the server, no CDN) plays a session's live HLS while `capture record` runs and
 * its export afterwards; the console signs in, lists the session, follows it from `active` to
 * `exported` over the WebSocket without a reload, shows its event timeline in order and plays its
 * export; a wrong key gets an error and another account's session stays out of reach.
 * Screenshots go to apps/cli/test-output/browser/.
 */
import { AccountStore } from "@capture/gateway"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  currentTime,
  frameStats,
  isPicture,
  launchChromium,
  play,
  playedPast,
  SCREENSHOTS,
  screenshot,
} from "./browser.js"
import { type CliProcess, killIfRunning, startCli } from "./cli.js"
import { type CaptureServer, pollUntil, startCaptureServer } from "./endToEnd.js"

// Longer than the test needs: it stops the recorder (Ctrl-C) once the live stream has played.
const RECORD_SECONDS = 120

let nats: NatsServerHandle
let nc: NatsConnection
let server: CaptureServer
let browser: Browser
let recorder: CliProcess | undefined

beforeAll(async () => {
  nats = await startNatsServer()
  nc = await connect({ servers: nats.url, maxReconnectAttempts: -1 })
  ;[server, browser] = await Promise.all([startCaptureServer(nats.url), launchChromium()])
})
afterAll(async () => {
  await browser?.close()
  await killIfRunning(recorder)
  await killIfRunning(server?.process)
  await nc?.close()
  await nats?.stop()
})

/** A page of a fresh browser context (its own sessionStorage), console errors kept for the report. */
const newPage = async (): Promise<{ page: Page; errors: string[] }> => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  context.setDefaultTimeout(20_000)
  const page = await context.newPage()
  const errors: string[] = []
  page.on("pageerror", (error) => errors.push(error.message))
  return { page, errors }
}

const signIn = async (page: Page, apiKey: string): Promise<void> => {
  await page.goto(`${server.base}/console`)
  await page.fill("input[name=api_key]", apiKey)
  await page.click("button[type=submit]")
}

const rowStatus = (id: string) => `tr[data-session-id="${id}"] .status`

const started = Date.now()
/** Marks a step in the output, so a slow or stuck step shows where it was. */
const step = (what: string) =>
  console.log(`[console test] ${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`)

describe("the console and the player in Chromium, against capture serve", () => {
  it("plays live HLS while recording; the console follows the session to exported, shows its timeline and plays its export", async () => {
    const { page: consolePage, errors } = await newPage()
    // A browser that opens / lands on the console.
    await consolePage.goto(`${server.base}/`)
    expect(new URL(consolePage.url()).pathname).toBe("/console")
    await signIn(consolePage, server.apiKey)
    await consolePage.waitForSelector("#live[data-state=live]", { timeout: 15_000 })
    // Nothing secret in the URL: the key is in the tab's sessionStorage.
    expect(consolePage.url()).not.toContain(server.apiKey)

    const session = (
      await server.data("POST", "/collection/default/capture/session", { end_user_id: "browser-user" })
    ).id as string
    const token = (await server.data("POST", "/capture/session/token", { user_id: "browser-user" }))
      .token as string
    await consolePage.waitForSelector(`${rowStatus(session)}[data-status=created]`, { timeout: 15_000 })
    // Marks this document: still there at the end means no reload happened.
    await consolePage.evaluate(() => {
      window.marker = "same document"
    })

    step("recording")
    recorder = startCli([
      ...["record", "--server", server.base, "--token", token, "--session", session],
      ...["--synthetic", "--channels", "display:1,mic:default", "--duration", `${RECORD_SECONDS}s`],
    ])
    await consolePage.waitForSelector(`${rowStatus(session)}[data-status=active]`, { timeout: 60_000 })
    await screenshot(consolePage, "console-sessions-active")

    step("live player page")
    // The live player page of the display channel, while the recorder runs.
    const streaming = await pollUntil(
      "a live stream_url for display:1",
      () => server.data("GET", `/capture/session/${session}`),
      (view) =>
        (view.channels as Array<{ channel_id: string; stream_url: string | null }>).some(
          (c) => c.channel_id === "display:1" && c.stream_url !== null,
        ),
      { timeoutMs: 30_000 },
    )
    const liveUrl = (streaming.channels as Array<{ channel_id: string; stream_url: string }>)
      .find((c) => c.channel_id === "display:1")
      ?.stream_url.replace("/index.m3u8?", "/player?")
    const { page: livePage } = await newPage()
    await livePage.goto(liveUrl ?? "")
    await livePage.waitForSelector("video[data-engine='hls.js']")
    await play(livePage, "video")
    await playedPast(livePage, "video", 0, 20_000)
    const liveStart = await currentTime(livePage, "video")
    await playedPast(livePage, "video", liveStart + 2, 20_000)
    const liveFrame = await frameStats(livePage, "video")
    expect(isPicture(liveFrame), JSON.stringify(liveFrame)).toBe(true)
    await screenshot(livePage, "player-live")
    // All of that while the session still records; then the recorder stops as on Ctrl-C (its
    // tail uploaded, the session stopped and exported).
    const during = await server.data("GET", `/capture/session/${session}`)
    expect(during.status, "the session was still recording").toBe("active")
    await livePage.context().close()
    recorder.child.kill("SIGINT")

    const exit = await Promise.race([recorder.exited, new Promise((resolve) => setTimeout(resolve, 60_000))])
    step(
      `recorder exited (${JSON.stringify(exit)}): ${recorder.output().trim().split("\n").slice(-3).join(" | ")}`,
    )
    // The console's list follows the session to exported, over the WebSocket.
    await consolePage.waitForSelector(`${rowStatus(session)}[data-status=exported]`, { timeout: 60_000 })
    expect(await consolePage.evaluate(() => window.marker)).toBe("same document")
    await screenshot(consolePage, "console-sessions-exported")

    step("session page")
    // The session page: its timeline in event order, and its export playing.
    await consolePage.click(`tr[data-session-id="${session}"] a`)
    await consolePage.waitForSelector("#timeline li")
    await consolePage.waitForSelector("#exports video[data-engine='hls.js']", { timeout: 15_000 })
    const timeline = await consolePage.$$eval("#timeline li", (items) =>
      items.map((item) => ({
        sequence: Number(item.getAttribute("data-sequence")),
        type: item.getAttribute("data-type"),
        status: item.querySelector(".status")?.getAttribute("data-status"),
      })),
    )
    expect(timeline.map((step) => step.sequence)).toEqual(timeline.map((_, i) => i + 1))
    expect(timeline[0]?.type).toBe("SessionCreated")
    expect(timeline.at(-1)?.status).toBe("exported")
    const statuses = timeline.map((step) => step.status)
    for (const status of ["created", "starting", "active", "stopping", "stopped", "exported"]) {
      expect(statuses, status).toContain(status)
    }
    // The timeline is the history `capture replay` shows, served by the gateway.
    const history = await server.data("GET", `/collection/default/capture/session/${session}/history`)
    expect((history.events as Array<{ type: string }>).map((e) => e.type)).toEqual(
      timeline.map((s) => s.type),
    )

    step("export in the console")
    const exportVideo = "#exports video[data-engine='hls.js']"
    await play(consolePage, exportVideo)
    await playedPast(consolePage, exportVideo, 2, 20_000)
    expect(isPicture(await frameStats(consolePage, exportVideo))).toBe(true)
    expect(await consolePage.$$eval("a.raw-asset", (links) => links.length)).toBeGreaterThanOrEqual(2)
    await consolePage.$eval(exportVideo, (video: PageVideo) => video.pause())
    await screenshot(consolePage, "console-session")
    expect(errors).toEqual([])

    step("export player page")
    // The export's own player page, as its player_url hands it out.
    const exported = await server.data("GET", `/collection/default/capture/session/${session}`)
    const videoId = exported.exported_video_id as string
    const { page: playerPage } = await newPage()
    await playerPage.goto(`${server.base}/player/${videoId}`)
    await playerPage.waitForSelector("video[data-engine='hls.js']")
    await play(playerPage, "video")
    await playedPast(playerPage, "video", 2, 20_000)
    const exportFrame = await frameStats(playerPage, "video")
    expect(isPicture(exportFrame), JSON.stringify(exportFrame)).toBe(true)
    await screenshot(playerPage, "player-export")
    // No script or media from anywhere but this server.
    const origins = await playerPage.evaluate(() =>
      performance.getEntriesByType("resource").map((entry) => new URL(entry.name).origin),
    )
    expect(new Set(origins)).toEqual(new Set([server.base]))
    await playerPage.context().close()
    await consolePage.context().close()
    console.log(`screenshots in ${SCREENSHOTS}`)
  }, 150_000)

  it("a wrong API key gets an error, and another account's session is not reachable", async () => {
    const { page } = await newPage()
    await signIn(page, "sk-not-a-key-of-this-server-0123456789")
    const refusal = await page.waitForSelector("#sign-in-error .error")
    expect(await refusal.textContent()).toMatch(/refused/)
    await screenshot(page, "console-wrong-key")

    // A session of the first account, and a key of a second one.
    const theirs = (
      await server.data("POST", "/collection/default/capture/session", { end_user_id: "someone" })
    ).id as string
    const accounts = await AccountStore.open(nc)
    const other = await accounts.createAccount("other")
    const { key } = await accounts.createApiKey(other.id, "console-test")
    accounts.close()

    // The history route keeps another account's session out of reach too; an API client asking
    // for / gets the JSON 404, not the console.
    const history = await fetch(`${server.base}/collection/default/capture/session/${theirs}/history`, {
      headers: { "x-access-token": key },
    })
    expect(history.status).toBe(404)
    expect(((await history.json()) as { error_code: string }).error_code).toBe("session_not_found")
    const root = await fetch(`${server.base}/`, {
      headers: { accept: "application/json" },
      redirect: "manual",
    })
    expect(root.status).toBe(404)
    expect(((await root.json()) as { error_code: string }).error_code).toBe("not_found")

    await signIn(page, key)
    await page.waitForSelector("#sessions")
    await page.waitForSelector("#sessions td.empty")
    expect(await page.$(`tr[data-session-id="${theirs}"]`)).toBeNull()
    await page.evaluate((id) => {
      location.hash = `#/session/${id}`
    }, theirs)
    const notFound = await page.waitForSelector(".error")
    expect(await notFound.textContent()).toMatch(/not_found|not found/)
    expect(await page.$("#timeline")).toBeNull()
    await screenshot(page, "console-other-account")
    await page.context().close()
  }, 60_000)
})
