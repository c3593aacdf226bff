/**
 * The player page (`GET /player/{video_id}`, an export's `player_url`; a clip's `player`; a live
 * channel's `player`): a `<video>` that the console package's player script plays, hls.js bundled
 * and served by this server (no CDN, so it plays without internet), falling back to the files.
 */
import { PLAYER_SCRIPT, STATIC_PREFIX } from "@capture/console"

/**
 * Where the page plays from: an HLS playlist with files to fall back on (played one after
 * another: a compiled stream's videos), an HLS playlist alone (live), or files alone.
 */
export interface PlayerSources {
  readonly hls?: string
  readonly files?: ReadonlyArray<string>
}

const html = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  )

/** The page titled `title`, playing `sources`, loading the player script from `publicUrl`. */
export const playerPage = (
  title: string,
  sources: PlayerSources,
  publicUrl: string,
): string => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${html(title)}</title>
<style>body{margin:0;background:#000;display:flex;align-items:center;justify-content:center;height:100vh}video{max-width:100%;max-height:100%}</style>
</head>
<body>
<video id="v" controls playsinline data-capture-player data-hls="${html(sources.hls ?? "")}" data-files="${html(JSON.stringify(sources.files ?? []))}"></video>
<script type="module" src="${html(`${publicUrl}${STATIC_PREFIX}${PLAYER_SCRIPT}`)}"></script>
</body>
</html>
`
