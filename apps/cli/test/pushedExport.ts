/**
 * How both push suites (RTMP, WHIP) check a pushed session's end: it exported, each pushed
 * channel is one run of indexes across every publish with only the last final, and the export
 * downloads as a playable file.
 */
import { writeFile } from "node:fs/promises"
import { join } from "node:path"
import type { MediaStore } from "@capture/media"
import { expect } from "vitest"
import { type CaptureServer, pollUntil } from "./endToEnd.js"
import { probe } from "./media.js"

export const expectPushedExport = async (options: {
  readonly server: CaptureServer
  readonly media: MediaStore
  readonly session: Parameters<MediaStore["list"]>[0]
  readonly channels: ReadonlyArray<string>
  /** Where the downloaded export is written. */
  readonly work: string
}) => {
  const { server, media, session } = options
  const exported = await pollUntil(
    "the session exported",
    () => server.data("GET", `/collection/default/capture/session/${session}`),
    (view) => view.status === "exported" || view.status === "failed",
    { timeoutMs: 120_000 },
  )
  expect(exported.status).toBe("exported")

  let recordedMs = 0
  for (const channel of options.channels) {
    const records = (await media.list(session))
      .filter((r) => r.channel_id === channel)
      .sort((a, b) => a.index - b.index)
    expect(records.map((r) => r.index)).toEqual(records.map((_, i) => i))
    expect(records.filter((r) => r.final).map((r) => r.index)).toEqual([records.length - 1])
    const first = records[0]
    const last = records.at(-1)
    if (first !== undefined && last !== undefined) {
      recordedMs = Math.max(recordedMs, last.start_ms + last.duration_ms - first.start_ms)
    }
  }

  const videoId = exported.exported_video_id as string
  expect(videoId).toMatch(/./)
  const video = (await server.data("GET", `/collection/default/video/${videoId}`)) as { download_url: string }
  const response = await fetch(video.download_url)
  expect(response.status).toBe(200)
  const file = join(options.work, "export.mp4")
  await writeFile(file, new Uint8Array(await response.arrayBuffer()))
  const probed = await probe(file)
  return { probed, recordedMs, seconds: Number(probed.format.duration) }
}
