/**
 * The player page's script (`/static/player.js`): plays every `video[data-capture-player]` from its
 * `data-hls` playlist and `data-file` fallback.
 */
import { attachPlayer } from "./Player.js"

for (const video of document.querySelectorAll<HTMLVideoElement>("video[data-capture-player]")) {
  attachPlayer(video, { hls: video.dataset.hls, file: video.dataset.file })
}
