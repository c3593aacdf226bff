/**
 * The export pipeline of one muxer instance: makes pieces as segment records arrive (raw remux
 * per segment, mixed audio per window once its inputs are settled) and assembles an export from
 * whatever exists at the end, making only what is missing: the tail, gaps, inits, the manifest.
 *
 * Every piece is named by what went into it, so two instances (or a restarted one) making the
 * same piece make the same bytes, and whatever is already stored is reused.
 */

import type { FfmpegTools } from "@capture/binaries"
import {
  type AssetIndexEntry,
  assetIndexName,
  type Manifest,
  type ManifestFile,
  type ManifestPart,
  type MediaStore,
  manifestName,
  type StoredManifest,
  upgradeManifest,
} from "@capture/media"
import {
  type Channel,
  type ChannelId,
  type ExportAsset,
  type ExportGap,
  type ExportMetadata,
  type MediaSegment,
  rawAssetId,
  type VideoId,
} from "@capture/protocol"
import { mainExportChannel } from "@capture/session-actor"
import {
  type FillSpec,
  MIX_RATE,
  makeFill,
  mixInit,
  mixWindow,
  probeSegment,
  type Remuxed,
  remuxSegment,
  type StreamParams,
} from "./media.js"
import { concat, fragmentTiming, mergeInits, trackTimescale } from "./mp4.js"
import {
  type AudioWindow,
  type ChannelLayout,
  layoutChannel,
  type PieceInfo,
  type PlacedPart,
  placeParts,
  planMix,
  rawKey,
  windowIsSettled,
  windowsForAudio,
  windowsForVideo,
} from "./plan.js"
import { Semaphore } from "./semaphore.js"
import { type ExportJob, type MuxerStore, shortHash } from "./store.js"

/** The part of a session's state the pipeline needs. */
export interface SessionChannels {
  readonly channels: ReadonlyArray<Channel>
  readonly primary: string | null
}

/** The video channel an export of `session` shows when none is named: the primary if stored. */
export const defaultVideoChannel = (session: SessionChannels): string | null =>
  mainExportChannel(session.channels, session.primary as ChannelId | null)

export type AssembleResult =
  | { readonly ok: true; readonly manifest: Manifest; readonly piecesMade: number }
  | { readonly ok: false; readonly code: string; readonly message: string }

interface SessionWork {
  records: Map<string, MediaSegment>
  pieces: Map<string, PieceInfo>
  refreshedAt: number
  /** Incremental mixing: windows before this one are done (per target timeline). */
  cursor: { e0: number; done: number }
  touchedAt: number
  /** When this instance first worked on the session. */
  createdAt: number
  queue: Promise<void>
  /** Stream parameters per channel, for fillers. */
  params: Map<string, Promise<StreamParams>>
}

const REFRESH_MS = 10_000
const IDLE_MS = 10 * 60_000

const segmentKey = (r: MediaSegment) => `${r.channel_id}/${r.index}`
const safeFileName = (channelId: string) => channelId.replace(/[^A-Za-z0-9._-]/g, "_")

export class Pipeline {
  private readonly sessions = new Map<string, SessionWork>()
  private readonly inFlight = new Map<string, Promise<PieceInfo>>()
  private mixInitBytes: Promise<Uint8Array> | undefined
  private readonly ffmpeg: Semaphore
  /** Pieces this instance made (the ones it found stored are not counted). */
  piecesMade = 0

  constructor(
    private readonly tools: FfmpegTools,
    private readonly media: MediaStore,
    private readonly store: MuxerStore,
    concurrency: number,
    private readonly log: (message: string) => void,
  ) {
    this.ffmpeg = new Semaphore(concurrency)
  }

  /** Incremental work for one arriving record: its raw piece, then any settled mix windows. */
  async onRecord(record: MediaSegment, session: SessionChannels): Promise<void> {
    const channel = session.channels.find((c) => c.channel_id === record.channel_id)
    if (channel === undefined || !channel.store) return
    const work = await this.work(record.session_id)
    work.records.set(segmentKey(record), record)
    await this.ensureRaw(work, record, channel.type)
    // One incremental step at a time per session: steps read and extend the same cursor.
    const step = work.queue.then(() =>
      this.mixSettled(work, record.session_id, session, channel.type === "audio" ? record : undefined),
    )
    work.queue = step.catch(() => undefined)
    await step
  }

  /** Forgets a session's cached work (it ended). */
  forget(sessionId: string): void {
    this.sessions.delete(sessionId)
  }

  /**
   * Builds an export from everything stored for the session: raw assets of every stored channel,
   * the muxed video of `videoChannelId` (or audio only), and the manifest under the job's video id.
   */
  async assemble(
    sessionId: string,
    session: SessionChannels,
    videoChannelId: string | null,
    job: ExportJob,
  ): Promise<AssembleResult> {
    const existing = await this.store.getJson<StoredManifest>(manifestName(job.video_id))
    if (existing !== undefined) return { ok: true, manifest: upgradeManifest(existing), piecesMade: 0 }
    const madeBefore = this.piecesMade
    const work = await this.work(sessionId, true)
    const records = [...work.records.values()]
    const stored = session.channels.filter((c) => c.store)
    await Promise.all(
      records.flatMap((r) => {
        const channel = stored.find((c) => c.channel_id === r.channel_id)
        return channel === undefined ? [] : [this.ensureRaw(work, r, channel.type)]
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
    const parts: ManifestPart[] = []
    const segments: Array<{ duration: number; first: number; count: number }> = []
    const inits: Uint8Array[] = []
    let seq = 1
    const take = (placed: PlacedPart, track: number): ManifestPart => {
      const part = { ...placed, track, base: placed.baseDecodeTime, seq }
      seq += placed.moofs
      return part
    }
    let e0: number
    let endMs: number
    let windows: AudioWindow[]
    let videoParts: PlacedPart[] = []
    let videoTimescale = 1
    let audioShift = 0
    if (videoLayout !== undefined) {
      e0 = videoLayout.startMs
      endMs = videoLayout.endMs
      const items = await this.withFills(sessionId, videoLayout, "video")
      const first = videoLayout.usable[0]?.piece as PieceInfo
      videoTimescale = first.timescale
      const shift = Math.max(0, ...items.map((i) => i.piece.min_pts))
      videoParts = placeParts(items, e0, videoTimescale, shift)
      audioShift = Math.round((shift * MIX_RATE) / videoTimescale)
      windows = windowsForVideo(videoLayout.items, e0)
      inits.push(await this.initOf(first))
    } else {
      e0 = Math.min(...audioLayouts.map((l) => l.startMs))
      endMs = Math.max(...audioLayouts.map((l) => l.endMs))
      windows = windowsForAudio(e0, endMs)
    }
    const audioParts: Array<PlacedPart | undefined> = []
    if (audioLayouts.length > 0) {
      const mixed = await Promise.all(
        windows.map((w) =>
          w.to > w.from ? this.ensureMix(work, sessionId, planMix(w, e0, audioLayouts)) : undefined,
        ),
      )
      windows.forEach((w, i) => {
        const piece = mixed[i]
        audioParts.push(
          piece === undefined
            ? undefined
            : {
                name: piece.name,
                bytes: piece.bytes,
                moofs: piece.moofs,
                baseDecodeTime: w.from + audioShift,
                duration: piece.duration,
              },
        )
      })
      inits.push(await this.mixInit())
    }
    const audioTrack = videoLayout === undefined ? 1 : 2
    if (videoLayout !== undefined) {
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
    const trackEnd = (ps: ReadonlyArray<ManifestPart>, track: number, timescale: number) =>
      Math.max(
        0,
        ...ps.filter((p) => p.track === track).map((p) => ((p.base + p.duration) * 1000) / timescale),
      )
    const durationMs = Math.round(
      Math.max(
        videoLayout === undefined ? 0 : trackEnd(parts, 1, videoTimescale),
        audioLayouts.length === 0 ? 0 : trackEnd(parts, audioTrack, MIX_RATE),
      ),
    )
    const videoInit = mergeInits(inits, durationMs)
    const videoInitName = `videos/${job.video_id}/init.mp4`
    await this.store.putObject(videoInitName, videoInit)

    // Raw assets: each stored channel on its own timeline, gaps filled.
    const raw: ManifestFile[] = []
    const assets: ExportAsset[] = []
    const usedNames = new Set<string>()
    for (const channel of stored) {
      const layout = layouts.get(channel.channel_id)
      if (layout === undefined) continue
      const items = await this.withFills(sessionId, layout, channel.type)
      const first = layout.usable[0]?.piece as PieceInfo
      const shift = Math.max(0, ...items.map((i) => i.piece.min_pts))
      const placed = placeParts(items, layout.startMs, first.timescale, shift)
      let s = 1
      const rawParts = placed.map((p) => {
        const part = { ...p, track: 1, base: p.baseDecodeTime, seq: s }
        s += p.moofs
        return part
      })
      const last = placed.at(-1)
      const assetMs =
        last === undefined ? 0 : Math.round(((last.baseDecodeTime + last.duration) * 1000) / first.timescale)
      const init = mergeInits([await this.initOf(first)], assetMs)
      let base = `raw/${safeFileName(channel.channel_id)}`
      while (usedNames.has(base)) base += "_"
      usedNames.add(base)
      const file = `${base}.${channel.type === "video" ? "mp4" : "m4a"}`
      const initName = `videos/${job.video_id}/${base}.init.mp4`
      await this.store.putObject(initName, init)
      const contentType = channel.type === "video" ? "video/mp4" : "audio/mp4"
      raw.push({ file, contentType, init: { name: initName, bytes: init.length }, parts: rawParts })
      const assetId = rawAssetId(job.video_id as VideoId, channel.channel_id, channel.type)
      // The asset's way back to its export, for `GET /collection/{cid}/video|audio/{asset id}`.
      const entry: AssetIndexEntry = { asset_id: assetId, video_id: job.video_id }
      await this.store.putJson(assetIndexName(assetId), entry)
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
      start_ms: Math.round(e0),
      start_time: new Date(e0).toISOString(),
      duration_ms: durationMs,
      stream: "index.m3u8",
      download: "video.mp4",
      bytes: videoInit.length + parts.reduce((n, p) => n + p.bytes, 0),
      audio_channel_ids: audioChannels.map((c) => c.channel_id),
      channels: assets,
      gaps,
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
    await this.store.putJson(manifestName(job.video_id), manifest)
    return { ok: true, manifest, piecesMade: this.piecesMade - madeBefore }
  }

  private async work(sessionId: string, fresh = false): Promise<SessionWork> {
    const now = Date.now()
    for (const [id, w] of this.sessions) if (now - w.touchedAt > IDLE_MS) this.sessions.delete(id)
    let work = this.sessions.get(sessionId)
    if (work === undefined) {
      work = {
        records: new Map(),
        pieces: new Map(),
        refreshedAt: 0,
        cursor: { e0: Number.NaN, done: 0 },
        touchedAt: now,
        createdAt: now,
        queue: Promise.resolve(),
        params: new Map(),
      }
      this.sessions.set(sessionId, work)
    }
    work.touchedAt = now
    if (fresh || now - work.refreshedAt > REFRESH_MS) {
      work.refreshedAt = now
      const [records, pieces] = await Promise.all([this.media.list(sessionId), this.store.pieces(sessionId)])
      for (const r of records) work.records.set(segmentKey(r), r)
      for (const [key, piece] of pieces) if (!work.pieces.has(key)) work.pieces.set(key, piece)
    }
    return work
  }

  private async mixSettled(
    work: SessionWork,
    sessionId: string,
    session: SessionChannels,
    arrived: MediaSegment | undefined,
  ): Promise<void> {
    const records = [...work.records.values()]
    const stored = session.channels.filter((c) => c.store)
    const audio = stored
      .filter((c) => c.type === "audio")
      .map((c) => ({
        layout: layoutChannel(c.channel_id, records, work.pieces, false),
        records: records.filter((r) => r.channel_id === c.channel_id),
      }))
    if (audio.length === 0) return
    const videoChannelId = defaultVideoChannel(session)
    let e0: number
    let windows: AudioWindow[]
    if (videoChannelId !== null) {
      const video = layoutChannel(videoChannelId, records, work.pieces, false)
      if (video === undefined) return
      e0 = video.startMs
      windows = windowsForVideo(video.items, e0)
    } else {
      if (audio.some((a) => a.records.length > 0 && a.layout === undefined)) return
      const layouts = audio.flatMap((a) => (a.layout === undefined ? [] : [a.layout]))
      if (layouts.length === 0) return
      e0 = Math.min(...layouts.map((l) => l.startMs))
      windows = windowsForAudio(e0, Math.max(...layouts.map((l) => l.endMs)))
    }
    if (work.cursor.e0 !== e0) work.cursor = { e0, done: 0 }
    // Audio arriving late (its channel was taken for absent) changes windows already mixed: go
    // back to the first one it reaches. Windows whose inputs did not change are found by name.
    if (arrived !== undefined) {
      const reached = windows.findIndex((w) => e0 + (w.to * 1000) / MIX_RATE > arrived.start_ms)
      if (reached >= 0 && reached < work.cursor.done) work.cursor.done = reached
    }
    const latestMs = Math.max(...records.map((r) => r.start_ms + r.duration_ms))
    const layouts = audio.flatMap((a) => (a.layout === undefined ? [] : [a.layout]))
    for (let i = work.cursor.done; i < windows.length; i++) {
      const window = windows[i] as AudioWindow
      if (!windowIsSettled(window, e0, audio, latestMs, Date.now() - work.createdAt)) return
      if (window.to > window.from) await this.ensureMix(work, sessionId, planMix(window, e0, layouts))
      work.cursor.done = i + 1
    }
  }

  private ensureRaw(work: SessionWork, record: MediaSegment, type: "audio" | "video"): Promise<PieceInfo> {
    const key = rawKey(record.channel_id, record.index, record.sha256)
    return this.piece(work, record.session_id, key, async () => {
      const ts = await this.media.read(record.session_id, record.channel_id, record.index)
      const base = {
        key,
        kind: "raw" as const,
        name: `pieces/${record.session_id}/raw/${record.channel_id}/${String(record.index).padStart(8, "0")}-${record.sha256.slice(0, 12)}.m4s`,
      }
      const failed = (error: string) => ({
        info: {
          ...base,
          ok: false,
          error,
          bytes: 0,
          timescale: 1,
          samples: 0,
          duration: 0,
          min_pts: 0,
          moofs: 0,
        },
        data: undefined,
      })
      if (ts === undefined) return failed("segment bytes are not stored")
      let remuxed: Remuxed
      try {
        remuxed = await this.ffmpeg.run(() => remuxSegment(this.tools, ts, type))
      } catch (error) {
        this.log(
          `segment ${record.session_id}/${record.channel_id}/${record.index} is unusable: ${String(error)}`,
        )
        return failed(error instanceof Error ? error.message.slice(0, 300) : String(error))
      }
      const initName = `pieces/${record.session_id}/raw/${record.channel_id}/init-${shortHash(
        Buffer.from(remuxed.init).toString("base64"),
      )}.mp4`
      await this.store.putObject(initName, remuxed.init)
      return {
        info: { ...base, ...pieceTiming(remuxed.fragments, trackTimescale(remuxed.init)), init: initName },
        data: remuxed.fragments,
      }
    })
  }

  private ensureMix(
    work: SessionWork,
    sessionId: string,
    plan: ReturnType<typeof planMix>,
  ): Promise<PieceInfo> {
    const key = `mix/${plan.signature}`
    return this.piece(work, sessionId, key, async () => {
      const inputs = await Promise.all(
        plan.runs.map(async (run) => {
          const bytes = await Promise.all(
            run.records.map((r) => this.media.read(sessionId, r.channel_id, r.index)),
          )
          return { ts: concat(bytes.filter((b): b is Uint8Array => b !== undefined)), offset: run.offset }
        }),
      )
      const mixed = await this.ffmpeg.run(() =>
        mixWindow(this.tools, inputs, plan.window.to - plan.window.from),
      )
      return {
        info: {
          key,
          kind: "mix" as const,
          name: `pieces/${sessionId}/mix/${plan.signature}.m4s`,
          ...pieceTiming(mixed.fragment, MIX_RATE),
        },
        data: mixed.fragment,
      }
    })
  }

  private ensureFill(work: SessionWork, sessionId: string, spec: FillSpec): Promise<PieceInfo> {
    const signature = shortHash(JSON.stringify({ v: 1, ...spec }), 32)
    const key = `fill/${signature}`
    return this.piece(work, sessionId, key, async () => {
      const filled = await this.ffmpeg.run(() => makeFill(this.tools, spec))
      const timescale = spec.type === "audio" ? spec.sampleRate : trackTimescale(filled.init)
      return {
        info: {
          key,
          kind: "fill" as const,
          name: `pieces/${sessionId}/fill/${signature}.m4s`,
          ...pieceTiming(filled.fragments, timescale),
        },
        data: filled.fragments,
      }
    })
  }

  /** Makes a piece once per process (single flight), unless the index already has it. */
  private piece(
    work: SessionWork,
    sessionId: string,
    key: string,
    make: () => Promise<{ info: PieceInfo; data: Uint8Array | undefined }>,
  ): Promise<PieceInfo> {
    const known = work.pieces.get(key)
    if (known !== undefined) return Promise.resolve(known)
    const flightKey = `${sessionId}/${key}`
    const pending = this.inFlight.get(flightKey)
    if (pending !== undefined) return pending
    const made = (async () => {
      const { info, data } = await make()
      this.piecesMade++
      await this.store.putPiece(sessionId, info, data)
      work.pieces.set(key, info)
      return info
    })().finally(() => this.inFlight.delete(flightKey))
    this.inFlight.set(flightKey, made)
    return made
  }

  /** A channel's items with every gap replaced by a filler piece. */
  private async withFills(
    sessionId: string,
    layout: ChannelLayout,
    type: "audio" | "video",
  ): Promise<Array<{ startMs: number; piece: PieceInfo }>> {
    const work = await this.work(sessionId)
    // A segment after a filler starts decoding its reordering delay before it is shown, so the
    // filler (which has no delay) is that much shorter: decode times never overlap.
    const first = layout.usable[0]?.piece
    const delayMs =
      first === undefined
        ? 0
        : (Math.max(...layout.usable.map((u) => u.piece.min_pts)) * 1000) / first.timescale
    const out: Array<{ startMs: number; piece: PieceInfo }> = []
    for (const item of layout.items) {
      if (item.kind === "segment") {
        out.push({ startMs: item.startMs, piece: item.piece })
        continue
      }
      const spec = await this.fillSpec(work, sessionId, layout, item.durationMs - delayMs, type)
      out.push({ startMs: item.startMs, piece: await this.ensureFill(work, sessionId, spec) })
    }
    return out
  }

  private async fillSpec(
    work: SessionWork,
    sessionId: string,
    layout: ChannelLayout,
    durationMs: number,
    type: "audio" | "video",
  ): Promise<FillSpec> {
    // Every gap gets a filler, however short: items and audio windows stay one-to-one.
    const sample = layout.usable[0]?.record as MediaSegment
    const key = `${sessionId}/${layout.channelId}`
    let params = work.params.get(key)
    if (params === undefined) {
      params = (async () => {
        const ts = await this.media.read(sessionId, sample.channel_id, sample.index)
        if (ts === undefined) throw new Error(`segment ${key}/${sample.index} vanished`)
        return this.ffmpeg.run(() => probeSegment(this.tools, ts, type))
      })()
      work.params.set(key, params)
      params.catch(() => work.params.delete(key))
    }
    const p = await params
    if (type === "audio") {
      const sampleRate = p.sampleRate ?? MIX_RATE
      const frames = Math.max(1, Math.round((durationMs * sampleRate) / 1000 / 1024))
      return { type, sampleRate, channels: p.channels ?? 2, frames }
    }
    const [num, den] = (p.rate ?? "30/1").split("/").map(Number) as [number, number]
    const frames = Math.max(1, Math.round((durationMs / 1000) * (num / den)))
    if (p.width === undefined || p.height === undefined) throw new Error(`no frame size for ${key}`)
    return { type, width: p.width, height: p.height, rate: p.rate ?? "30/1", frames }
  }

  private async initOf(piece: PieceInfo): Promise<Uint8Array> {
    if (piece.init === undefined) throw new Error(`piece ${piece.key} has no init`)
    const init = await this.store.getObject(piece.init)
    if (init === undefined) throw new Error(`init ${piece.init} is missing`)
    return init
  }

  /** The mixed audio track's init (the same for every export; made once per process). */
  private mixInit(): Promise<Uint8Array> {
    if (this.mixInitBytes === undefined) {
      const made = this.ffmpeg.run(() => mixInit(this.tools))
      this.mixInitBytes = made
      made.catch(() => {
        this.mixInitBytes = undefined
      })
    }
    return this.mixInitBytes
  }
}

/** The index fields of a piece made of `fragments` on a track with `timescale`. */
const pieceTiming = (fragments: Uint8Array, timescale: number) => {
  const timing = fragmentTiming(fragments)
  return {
    ok: true,
    bytes: fragments.length,
    timescale,
    samples: timing.samples,
    duration: timing.duration,
    min_pts: timing.minPts,
    moofs: timing.moofs,
  }
}
