/**
 * Assembling an export at the end: from whatever pieces exist for the session, making only what
 * is missing (the tail, gaps, inits), the muxed video of one channel (or audio only) with mixed
 * audio, every stored channel's raw asset, the export metadata and the manifest that names it all.
 * Paused time (every stored channel paused) is cut out of the muxed video (`pauses.ts`).
 * A manifest already stored under the job's video id is the export: assembling again reuses it.
 */

import {
  type AssetIndexEntry,
  assetIndexName,
  type Manifest,
  type ManifestFile,
  type ManifestPart,
  manifestChunkPrefix,
  manifestName,
  StoredManifest,
  upgradeMetadata,
} from "@capture/media"
import {
  decodeJson,
  type ExportAsset,
  type ExportGap,
  type ExportMetadata,
  rawAssetId,
  type TimeSpan,
  type VideoId,
} from "@capture/protocol"
import { MIX_RATE } from "./media.js"
import { mergeInits } from "./mp4.js"
import { type CutTimeline, cutAudio, cutVideo } from "./pauses.js"
import type { Pieces, SessionChannels } from "./pieces.js"
import {
  type ChannelLayout,
  layoutChannel,
  type PieceInfo,
  type PlacedPart,
  placedMix,
  placeParts,
  planMix,
  rawKey,
} from "./plan.js"
import type { ExportJob, MuxerStore } from "./store.js"

const decodeManifest = decodeJson(StoredManifest)

export type AssembleResult =
  | {
      readonly ok: true
      readonly metadata: ExportMetadata
      readonly piecesMade: number
      /** Manifest chunks this instance did not know stored (written, or found stored by a lookup). */
      readonly chunksWritten: number
    }
  | { readonly ok: false; readonly code: string; readonly message: string }

const safeFileName = (channelId: string) => channelId.replace(/[^A-Za-z0-9._-]/g, "_")

/**
 * Builds an export from everything stored for the session: raw assets of every stored channel,
 * the muxed video of `videoChannelId` (or audio only) with `pausedSpans` cut out of it, and the
 * manifest under the job's video id.
 */
export const assembleExport = async (
  pieces: Pieces,
  store: MuxerStore,
  sessionId: string,
  session: SessionChannels,
  videoChannelId: string | null,
  job: ExportJob,
  pausedSpans: ReadonlyArray<TimeSpan> = [],
): Promise<AssembleResult> => {
  const existing = await store.getJson(manifestName(job.video_id), decodeManifest)
  if (existing !== undefined)
    return { ok: true, metadata: upgradeMetadata(existing.metadata), piecesMade: 0, chunksWritten: 0 }
  const madeBefore = pieces.piecesMade
  const work = await pieces.work(sessionId, true)
  const records = [...work.records.values()]
  const stored = session.channels.filter((c) => c.store)
  await Promise.all(
    records.flatMap((r) => {
      const channel = stored.find((c) => c.channel_id === r.channel_id)
      return channel === undefined ? [] : [pieces.ensureRaw(work, r, channel.type)]
    }),
  )
  const layouts = new Map<string, ChannelLayout>()
  for (const channel of stored) {
    const layout = layoutChannel(channel.channel_id, records, work.pieces, true)
    if (layout !== undefined) layouts.set(channel.channel_id, layout)
  }
  if (layouts.size === 0) {
    const ofStored = records.filter((r) => stored.some((c) => c.channel_id === r.channel_id))
    const unreadable = ofStored.filter(
      (r) => work.pieces.get(rawKey(r.channel_id, r.index, r.sha256))?.ok === false,
    )
    return {
      ok: false,
      code: "no_media",
      message:
        ofStored.length === 0
          ? "no stored channel has any recorded segment"
          : `no stored channel has a usable segment (${ofStored.length} segments, ${unreadable.length} unreadable)`,
    }
  }
  const audioChannels = stored.filter((c) => c.type === "audio" && layouts.has(c.channel_id))
  const audioLayouts = audioChannels.map((c) => layouts.get(c.channel_id) as ChannelLayout)
  const videoLayout = videoChannelId === null ? undefined : layouts.get(videoChannelId)
  if (videoLayout === undefined && audioLayouts.length === 0) {
    return {
      ok: false,
      code: "no_media",
      message: `${videoChannelId} has no usable segment and no stored audio channel has one either`,
    }
  }

  // Muxed video: the video channel's pieces (gaps filled black), then windows of mixed audio.
  const inits: Uint8Array[] = []
  // Paused time is cut here (pauses.ts): each window says where its audio comes from.
  let timeline: CutTimeline
  let videoParts: PlacedPart[] = []
  let videoTimescale = 1
  let audioShift = 0
  if (videoLayout !== undefined) {
    const e0 = videoLayout.startMs
    const cut = cutVideo(videoLayout, pausedSpans)
    timeline = cut
    const items = await pieces.withFills(sessionId, cut.layout, "video")
    const first = cut.layout.usable[0]?.piece as PieceInfo
    videoTimescale = first.timescale
    const shift = Math.max(0, ...items.map((i) => i.piece.min_pts))
    videoParts = placeParts(items, e0, videoTimescale, shift)
    audioShift = Math.round((shift * MIX_RATE) / videoTimescale)
    inits.push(await pieces.initOf(first))
  } else {
    const e0 = Math.min(...audioLayouts.map((l) => l.startMs))
    timeline = cutAudio(e0, Math.max(...audioLayouts.map((l) => l.endMs)), pausedSpans)
  }
  const { windows } = timeline
  const audioParts: Array<PlacedPart | undefined> = []
  if (audioLayouts.length > 0) {
    const mixed = await Promise.all(
      windows.map((w) =>
        w.to > w.from ? pieces.ensureMix(work, sessionId, planMix(w, w.originMs, audioLayouts)) : undefined,
      ),
    )
    windows.forEach((w, i) => {
      const piece = mixed[i]
      audioParts.push(placedMix(piece, w.from + audioShift))
    })
    inits.push(await pieces.mixInit())
  }
  const audioTrack = videoLayout === undefined ? 1 : 2
  const { parts, segments } = muxedParts(
    videoLayout === undefined ? undefined : videoParts,
    audioParts,
    videoTimescale,
    audioTrack,
  )
  const trackEnd = (ps: ReadonlyArray<ManifestPart>, track: number, timescale: number) =>
    Math.max(0, ...ps.filter((p) => p.track === track).map((p) => ((p.base + p.duration) * 1000) / timescale))
  const durationMs = Math.round(
    Math.max(
      videoLayout === undefined ? 0 : trackEnd(parts, 1, videoTimescale),
      audioLayouts.length === 0 ? 0 : trackEnd(parts, audioTrack, MIX_RATE),
    ),
  )
  const videoInit = mergeInits(inits, durationMs)
  const videoInitName = `videos/${job.video_id}/init.mp4`
  await store.putObject(videoInitName, videoInit)

  // Raw assets: each stored channel on its own timeline, gaps filled.
  const raw: ManifestFile[] = []
  const assets: ExportAsset[] = []
  const usedNames = new Set<string>()
  for (const channel of stored) {
    const layout = layouts.get(channel.channel_id)
    if (layout === undefined) continue
    const items = await pieces.withFills(sessionId, layout, channel.type)
    const first = layout.usable[0]?.piece as PieceInfo
    const shift = Math.max(0, ...items.map((i) => i.piece.min_pts))
    const placed = placeParts(items, layout.startMs, first.timescale, shift)
    const rawParts = rawFileParts(placed)
    const last = placed.at(-1)
    const assetMs =
      last === undefined ? 0 : Math.round(((last.baseDecodeTime + last.duration) * 1000) / first.timescale)
    const init = mergeInits([await pieces.initOf(first)], assetMs)
    let base = `raw/${safeFileName(channel.channel_id)}`
    while (usedNames.has(base)) base += "_"
    usedNames.add(base)
    const file = `${base}.${channel.type === "video" ? "mp4" : "m4a"}`
    const initName = `videos/${job.video_id}/${base}.init.mp4`
    await store.putObject(initName, init)
    const contentType = channel.type === "video" ? "video/mp4" : "audio/mp4"
    raw.push({ file, contentType, init: { name: initName, bytes: init.length }, parts: rawParts })
    const assetId = rawAssetId(job.video_id as VideoId, channel.channel_id, channel.type)
    // The asset's way back to its export, for `GET /collection/{cid}/video|audio/{asset id}`.
    const entry: AssetIndexEntry = { asset_id: assetId, video_id: job.video_id }
    await store.putJson(assetIndexName(assetId), entry)
    assets.push({
      asset_id: assetId,
      channel_id: channel.channel_id,
      type: channel.type,
      file,
      content_type: contentType,
      bytes: init.length + rawParts.reduce((n, p) => n + p.bytes, 0),
      start_ms: Math.round(layout.startMs),
      start_time: new Date(layout.startMs).toISOString(),
      duration_ms: assetMs,
      segments: layout.usable.length,
      gaps: layout.gaps,
    })
  }
  const gaps: ExportGap[] = assets.flatMap((a) => a.gaps)
  const metadata = {
    video_id: job.video_id,
    session_id: sessionId,
    video_channel_id: videoLayout === undefined ? null : videoChannelId,
    created_at: job.created_at,
    start_ms: Math.round(timeline.startMs),
    start_time: new Date(timeline.startMs).toISOString(),
    duration_ms: durationMs,
    stream: "index.m3u8",
    download: "video.mp4",
    bytes: videoInit.length + parts.reduce((n, p) => n + p.bytes, 0),
    audio_channel_ids: audioChannels.map((c) => c.channel_id),
    channels: assets,
    gaps,
    paused_spans: pausedSpans,
    paused_ms_removed: Math.round(timeline.removedMs),
  } as unknown as ExportMetadata
  const manifest: Manifest = {
    v: 1,
    metadata,
    video: {
      file: "video.mp4",
      contentType: "video/mp4",
      init: { name: videoInitName, bytes: videoInit.length },
      parts,
    },
    segments,
    raw,
  }
  // Chunks made while the session ran are not written again: only the tail and the head.
  const chunksWritten = await store.putManifest(
    job.video_id,
    manifest,
    manifestChunkPrefix(sessionId),
    work.chunks,
    pieces.chunkParts,
  )
  return { ok: true, metadata, piecesMade: pieces.piecesMade - madeBefore, chunksWritten }
}

/**
 * The muxed video's parts, numbered: each video part followed by its window's mix part (audio
 * only: the mix parts), and its HLS segments (one per video part, or per mix part).
 */
export const muxedParts = (
  videoParts: ReadonlyArray<PlacedPart> | undefined,
  audioParts: ReadonlyArray<PlacedPart | undefined>,
  videoTimescale: number,
  audioTrack: number,
): { parts: ManifestPart[]; segments: Array<{ duration: number; first: number; count: number }> } => {
  const parts: ManifestPart[] = []
  const segments: Array<{ duration: number; first: number; count: number }> = []
  let seq = 1
  const take = (placed: PlacedPart, track: number): ManifestPart => {
    const part = { ...placed, track, base: placed.baseDecodeTime, seq }
    seq += placed.moofs
    return part
  }
  if (videoParts !== undefined) {
    videoParts.forEach((v, i) => {
      const first = parts.length
      parts.push(take(v, 1))
      const a = audioParts[i]
      if (a !== undefined) parts.push(take(a, audioTrack))
      segments.push({ duration: v.duration / videoTimescale, first, count: parts.length - first })
    })
  } else {
    for (const a of audioParts) {
      if (a === undefined) continue
      segments.push({ duration: a.duration / MIX_RATE, first: parts.length, count: 1 })
      parts.push(take(a, audioTrack))
    }
  }
  return { parts, segments }
}

/** A raw asset's parts, numbered: its channel's pieces on track 1. */
export const rawFileParts = (placed: ReadonlyArray<PlacedPart>): ManifestPart[] => {
  let seq = 1
  return placed.map((p) => {
    const part = { ...p, track: 1, base: p.baseDecodeTime, seq }
    seq += p.moofs
    return part
  })
}
