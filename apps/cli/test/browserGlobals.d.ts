/**
 * The few browser globals that functions run inside Chromium (playwright's `page.$eval`,
 * `page.evaluate`) use. The tests are type-checked for Node, without the DOM library: adding it
 * would change `fetch` and friends for every other suite.
 */
interface PageVideo {
  currentTime: number
  readonly videoWidth: number
  readonly videoHeight: number
  muted: boolean
  readonly paused: boolean
  readonly readyState: number
  readonly networkState: number
  readonly error: { readonly code: number; readonly message: string } | null
  readonly dataset: Record<string, string | undefined>
  readonly currentSrc: string
  play(): Promise<void>
  pause(): void
  scrollIntoView(): void
}

interface PageCanvas {
  width: number
  height: number
  getContext(kind: "2d"): {
    drawImage(image: PageVideo, x: number, y: number, width: number, height: number): void
    getImageData(x: number, y: number, width: number, height: number): { readonly data: Uint8ClampedArray }
  } | null
}

declare const document: {
  querySelector(selector: string): PageVideo | null
  createElement(tag: "canvas"): PageCanvas
}
declare const window: Record<string, unknown>
declare const location: { hash: string }
declare const performance: {
  getEntriesByType(type: "resource"): ReadonlyArray<{ readonly name: string }>
}
