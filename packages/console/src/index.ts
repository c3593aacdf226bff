/**
 * @capture/console — the browser side of Capture, built by Vite into `dist/web`: the player
 * (`player.js`, hls.js bundled, no CDN) that player pages load, and the web console
 * (`console.html`). The gateway serves these files; this module only says where they are.
 */
import { fileURLToPath } from "node:url"

/** The folder of the built files (`vite build` writes it; empty until the package is built). */
export const CONSOLE_ASSETS_DIR: string = fileURLToPath(new URL("./web/", import.meta.url))

/** Where the gateway serves that folder: the built pages refer to their files under it. */
export const STATIC_PREFIX = "/static/"

/** The player script a player page loads as a module: it attaches to `video[data-capture-player]`. */
export const PLAYER_SCRIPT = "player.js"

/** The console's page, served at `/console`. */
export const CONSOLE_PAGE = "console.html"
