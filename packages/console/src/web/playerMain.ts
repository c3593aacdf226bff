/**
 * The player page's script (`/static/player.js`): plays every `video[data-capture-player]` from its
 * `data-hls` playlist and `data-files` fallback (a JSON array of URLs, played one after another).
 */
import { attachPlayer, filesOf } from "./Player.js"

for (const video of document.querySelectorAll<HTMLVideoElement>("video[data-capture-player]")) {
  attachPlayer(video, { hls: video.dataset.hls, files: filesOf(video.dataset.files) })
}
