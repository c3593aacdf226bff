/**
 * The player page (`GET /player/{video_id}`, an export's `player_url`; a clip's `player`): an HLS
 * stream in a `<video>`, through hls.js where the browser lacks native HLS, else the file; or just
 * a file (a raw asset's MP4 or M4A).
 */

/** Where the page plays from: an HLS playlist with a file to fall back on, or a file alone. */
export interface PlayerSources {
  readonly hls?: string
  readonly file: string
}

/** The page titled `title`, playing `sources`. */
export const playerPage = (title: string, sources: PlayerSources): string => {
  const html = (s: string) =>
    s.replace(
      /[&<>"']/g,
      (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
    )
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${html(title)}</title>
<style>body{margin:0;background:#000;display:flex;align-items:center;justify-content:center;height:100vh}video{max-width:100%;max-height:100%}</style>
</head>
<body>
<video id="v" controls playsinline data-hls="${html(sources.hls ?? "")}" data-file="${html(sources.file)}"></video>
<script src="https://cdn.jsdelivr.net/npm/hls.js@1/dist/hls.min.js"></script>
<script>
const v = document.getElementById("v"), hls = v.dataset.hls, file = v.dataset.file
if (hls === "") v.src = file
else if (v.canPlayType("application/vnd.apple.mpegurl")) v.src = hls
else if (window.Hls && Hls.isSupported()) { const h = new Hls(); h.loadSource(hls); h.attachMedia(v) }
else v.src = file
</script>
</body>
</html>
`
}
