/**
 * A real browser for tests: Debian's `chromium` (no browser download works here) driven by
 * playwright-core, headless; and what a person would check on a page: that a `<video>` plays and
 * that a frame of it drawn to a canvas is a picture, not a blank.
 */
import { existsSync } from "node:fs"
import { mkdir } from "node:fs/promises"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { type Browser, chromium, type Page } from "playwright-core"

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"

/** Where the browser tests write their screenshots (kept after the run for a person to look at). */
export const SCREENSHOTS = fileURLToPath(new URL("../test-output/browser/", import.meta.url))

/** Starts headless Chromium (with `extraArgs`); fails with a clear message when it is not installed. */
export const launchChromium = async (extraArgs: ReadonlyArray<string> = []): Promise<Browser> => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install chromium (scripts/bootstrap.sh --test does)`)
  }
  await mkdir(SCREENSHOTS, { recursive: true })
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--autoplay-policy=no-user-gesture-required",
      ...extraArgs,
    ],
  })
}

/** Saves a full-page screenshot as `<name>.png` under SCREENSHOTS. */
export const screenshot = async (page: Page, name: string): Promise<string> => {
  const file = join(SCREENSHOTS, `${name}.png`)
  await page.screenshot({ path: file, fullPage: true })
  return file
}

/** Starts the (muted) video at `selector` playing; `playedPast` says whether it does. */
export const play = (page: Page, selector: string): Promise<void> =>
  page.$eval(selector, (video: PageVideo) => {
    // In view: Chromium pauses a muted video that plays without a gesture while it is off-screen.
    video.scrollIntoView()
    video.muted = true
    // Its promise settles only once playback starts: not awaited here, so a video that never
    // plays fails `playedPast` with a timeout instead of hanging this call.
    video.play().catch(() => {})
  })

/** The video's `currentTime`. */
export const currentTime = (page: Page, selector: string): Promise<number> =>
  page.$eval(selector, (video: PageVideo) => video.currentTime)

/** What a video is doing, for a failure message. */
export const videoState = (page: Page, selector: string): Promise<Record<string, unknown>> =>
  page.$eval(selector, (video: PageVideo) => ({
    currentTime: video.currentTime,
    paused: video.paused,
    readyState: video.readyState,
    networkState: video.networkState,
    error: video.error === null ? null : `${video.error.code} ${video.error.message}`,
    engine: video.dataset.engine,
    engineError: video.dataset.error,
    src: video.currentSrc,
  }))

/** Waits until the video's `currentTime` passes `seconds`; on a timeout, says what the video was doing. */
export const playedPast = async (page: Page, selector: string, seconds: number, timeoutMs: number) => {
  try {
    await page.waitForFunction(
      ({ selector, seconds }) => {
        const video = document.querySelector(selector)
        return video !== null && video.currentTime > seconds
      },
      { selector, seconds },
      { timeout: timeoutMs, polling: 100 },
    )
  } catch (error) {
    const state = await videoState(page, selector).catch((cause: unknown) => ({ unreadable: String(cause) }))
    throw new Error(`${selector} did not play past ${seconds} s: ${JSON.stringify(state)}`, { cause: error })
  }
}

/** What a frame drawn to a canvas holds: the spread of its luma and how many distinct colours. */
export interface FrameStats {
  readonly width: number
  readonly height: number
  readonly lumaMin: number
  readonly lumaMax: number
  readonly colours: number
}

export const frameStats = (page: Page, selector: string): Promise<FrameStats> =>
  page.$eval(selector, (video: PageVideo) => {
    const canvas = document.createElement("canvas")
    canvas.width = 160
    canvas.height = 90
    const context = canvas.getContext("2d")
    if (context === null) throw new Error("no 2d context")
    context.drawImage(video, 0, 0, canvas.width, canvas.height)
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data
    let lumaMin = 255
    let lumaMax = 0
    const colours = new Set<number>()
    for (let i = 0; i < pixels.length; i += 4) {
      const r = pixels[i] ?? 0
      const g = pixels[i + 1] ?? 0
      const b = pixels[i + 2] ?? 0
      const luma = 0.3 * r + 0.59 * g + 0.11 * b
      lumaMin = Math.min(lumaMin, luma)
      lumaMax = Math.max(lumaMax, luma)
      colours.add(((r >> 4) << 8) | ((g >> 4) << 4) | (b >> 4))
    }
    return { width: video.videoWidth, height: video.videoHeight, lumaMin, lumaMax, colours: colours.size }
  })

/** A frame is a picture: some spread of light and several colours (a blank or black frame has neither). */
export const isPicture = (stats: FrameStats): boolean =>
  stats.width > 0 && stats.lumaMax - stats.lumaMin > 40 && stats.colours >= 8
