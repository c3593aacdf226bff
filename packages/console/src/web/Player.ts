/**
 * Playing a Capture stream in a `<video>`: hls.js (bundled from its npm package, served by the
 * gateway: no CDN) where the browser has Media Source Extensions, else the browser's own HLS, else
 * the file. A fatal hls.js error falls back to the file when there is one (an export's MP4); a live
 * stream has none. `video.dataset.engine` says which one plays, `video.dataset.error` why none can.
 */
import Hls from "hls.js"

/** What to play: an HLS playlist, a file (MP4 or M4A), or both (the file as the fallback). */
export interface PlayerSources {
  readonly hls?: string | undefined
  readonly file?: string | undefined
}

/** Plays `sources` in `video`; returns the function that lets go of it. */
export const attachPlayer = (video: HTMLVideoElement, sources: PlayerSources): (() => void) => {
  const playFile = (): void => {
    if (sources.file === undefined || sources.file === "") {
      video.dataset.error = "this browser cannot play HLS and there is no file to fall back on"
      return
    }
    video.dataset.engine = "file"
    video.src = sources.file
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
      if (sources.file !== undefined && sources.file !== "") playFile()
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
