/**
 * Playing a Capture stream in a `<video>`: hls.js (bundled from its npm package, served by the
 * gateway: no CDN) where the browser has Media Source Extensions, else the browser's own HLS, else
 * the files. A fatal hls.js error falls back to the files when there are some (an export's MP4; a
 * compiled stream's videos' ranges, played one after another); a live stream has none.
 * `video.dataset.engine` says which one plays, `video.dataset.error` why none can.
 */
import Hls from "hls.js"

/** What to play: an HLS playlist, files (MP4 or M4A, one after another), or both (the files as the fallback). */
export interface PlayerSources {
  readonly hls?: string | undefined
  readonly files?: ReadonlyArray<string> | undefined
}

/** The URLs of a `data-files` attribute (a JSON array of strings); none when it is not one. */
export const filesOf = (attribute: string | undefined): ReadonlyArray<string> => {
  try {
    const parsed: unknown = JSON.parse(attribute ?? "[]")
    return Array.isArray(parsed)
      ? parsed.filter((url): url is string => typeof url === "string" && url !== "")
      : []
  } catch {
    return []
  }
}

/** Plays `sources` in `video`; returns the function that lets go of it. */
export const attachPlayer = (video: HTMLVideoElement, sources: PlayerSources): (() => void) => {
  const files = sources.files ?? []
  const playFile = (): void => {
    if (files.length === 0) {
      video.dataset.error = "this browser cannot play HLS and there is no file to fall back on"
      return
    }
    video.dataset.engine = "file"
    let next = 0
    const playNext = () => {
      const file = files[next++]
      if (file === undefined) return
      video.dataset.file = String(next - 1)
      video.src = file
      if (next > 1) void video.play().catch(() => undefined)
    }
    // A compiled stream's files follow on: the next one starts where the last one ended.
    video.addEventListener("ended", playNext)
    playNext()
  }
  if (sources.hls === undefined || sources.hls === "") {
    playFile()
    return () => video.removeAttribute("src")
  }
  if (Hls.isSupported()) {
    const hls = new Hls({ lowLatencyMode: false })
    video.dataset.engine = "hls.js"
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return
      hls.destroy()
      if (files.length > 0) playFile()
      else video.dataset.error = `${data.type}: ${data.details}`
    })
    hls.loadSource(sources.hls)
    hls.attachMedia(video)
    return () => hls.destroy()
  }
  if (video.canPlayType("application/vnd.apple.mpegurl") !== "") {
    video.dataset.engine = "native"
    video.src = sources.hls
    return () => video.removeAttribute("src")
  }
  playFile()
  return () => video.removeAttribute("src")
}
