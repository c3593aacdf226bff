/**
 * One Vite build for the browser: the console page and the player entry, hls.js bundled into a
 * shared chunk. Entry names are stable (`player.js`, `console.js`) because the gateway's player
 * pages refer to `player.js` by name; shared chunks carry a hash and are cached for good.
 */
import { fileURLToPath } from "node:url"
import { defineConfig } from "vite"

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))

export default defineConfig({
  root: here("."),
  base: "/static/",
  logLevel: "warn",
  build: {
    outDir: here("../../dist/web"),
    emptyOutDir: true,
    target: "es2022",
    chunkSizeWarningLimit: 1024,
    rolldownOptions: {
      input: { console: here("console.html"), player: here("playerMain.ts") },
      output: {
        entryFileNames: "[name].js",
        chunkFileNames: "chunks/[name]-[hash].js",
        assetFileNames: "[name][extname]",
      },
    },
  },
})
