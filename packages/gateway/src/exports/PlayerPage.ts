/**
 * The player page of an export (`GET /player/{video_id}`, an export's `player_url`): its HLS
 * stream in a `<video>`, through hls.js where the browser lacks native HLS, else the MP4.
 */

/** The page for `videoId`, playing `streamUrl` (its `index.m3u8`). */
export const playerPage = (videoId: string, streamUrl: string): string => {
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
<title>${html(videoId)}</title>
<style>body{margin:0;background:#000;display:flex;align-items:center;justify-content:center;height:100vh}video{max-width:100%;max-height:100%}</style>
</head>
<body>
<video id="v" controls playsinline data-src="${html(streamUrl)}"></video>
<script src="https://cdn.jsdelivr.net/npm/hls.js@1/dist/hls.min.js"></script>
<script>
const v = document.getElementById("v"), src = v.dataset.src
if (v.canPlayType("application/vnd.apple.mpegurl")) v.src = src
else if (window.Hls && Hls.isSupported()) { const h = new Hls(); h.loadSource(src); h.attachMedia(v) }
else v.src = src.replace(/index\\.m3u8$/, "video.mp4")
</script>
</body>
</html>
`
}
