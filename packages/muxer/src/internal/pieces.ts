/**
 * Pieces: the ffmpeg work of one muxer instance, made as segment records arrive (raw remux per
 * segment, mixed audio per window once its inputs are settled) and on demand while an export is
 * assembled (fillers for gaps, the remaining windows). Per session it keeps the records and the
 * piece index it knows, refreshed from NATS.
 *
 * Every piece is named by what went into it, so two instances (or a restarted one) making the
 * same piece make the same bytes, and whatever is already stored is reused.
 */

import type { FfmpegTools } from "@capture/binaries"
import { MANIFEST_CHUNK_PARTS, type MediaStore, manifestChunkPrefix, manifestChunks } from "@capture/media"
import type { Channel, ChannelId, MediaSegment } from "@capture/protocol"
import { mainExportChannel } from "@capture/session-actor"
import { FfmpegFailed } from "../Ffmpeg.js"
import { AacDecoderPool } from "./aacDecoder.js"
import { AacEncoderPool } from "./aacEncoder.js"
import { muxedParts, rawFileParts } from "./assemble.js"
import {
  type FillSpec,
  MIX_RATE,
  type MixOptions,
  makeFill,
  mixInit,
  mixWindow,
  probeSegment,
  type Remuxed,
  type RemuxMode,
  remuxSegment,
  type StreamParams,
} from "./media.js"
import { concat, fragmentTiming, trackTimescale } from "./mp4.js"
import {
  faadRunDecoder,
  mixWindowNative,
  type NativeMixInput,
  NotNativeMix,
  pooledRunDecoder,
  type RunDecoder,
} from "./nativeMix.js"
import {
  type AudioWindow,
  type ChannelLayout,
  GAP_MS,
  type LayoutItem,
  type PieceInfo,
  type PlacedPart,
  placedMix,
  placeParts,
  planMix,
  rawKey,
  windowIsSettled,
  windowsForAudio,
  windowsForVideo,
} from "./plan.js"
import { Semaphore } from "./semaphore.js"
import { type MuxerStore, shortHash } from "./store.js"

/** The part of a session's state the pipeline needs. */
export interface SessionChannels {
  readonly channels: ReadonlyArray<Channel>
  readonly primary: string | null
}

/** The video channel an export of `session` shows when none is named: the primary if stored. */
export const defaultVideoChannel = (session: SessionChannels): string | null =>
  mainExportChannel(session.channels, session.primary as ChannelId | null)

type UsableSegment = ChannelLayout["usable"][number]

/** What this instance knows of one session's segments and pieces. */
export interface SessionWork {
  records: Map<string, MediaSegment>
  pieces: Map<string, PieceInfo>
  refreshedAt: number
  /** Stream sequences read up to: a refresh reads only what came after. */
  recordsSequence: number
  piecesSequence: number
  /** Records per channel (distinct indexes). */
  recordCounts: Map<string, number>
  /** The latest end (ms) of any record. */
  latestMs: number
  /**
   * Per channel, the certain prefix laid out so far (what `layoutChannel(…, false)` gives),
   * extended as records and pieces come instead of laid out again from the first record.
   */
  prefixes: Map<string, UsableSegment[]>
  /** The video windows cut so far (`windowsForVideo` of the prefix), for the `e0` they start at. */
  videoWindows: { e0: number; windows: AudioWindow[] }
  /** Incremental mixing: windows before this one are done (per target timeline). */
  cursor: { e0: number; done: number }
  /** The mix piece of each window before `cursor.done` (undefined: an empty window). */
  mixed: Array<PieceInfo | undefined>
  /** Manifest chunks this instance stored for the session (made while it runs, or at an export). */
  chunks: Set<string>
  /**
   * Chunks of the default export's manifest made while the session runs: up to which window, and
   * how many full chunks of the muxed video and of each raw asset so far.
   */
  prepared: { windows: number; muxed: number; raw: Map<string, number> }
  touchedAt: number
  /** When this instance first worked on the session. */
  createdAt: number
  queue: Promise<void>
  /** Stream parameters per channel, for fillers. */
  params: Map<string, Promise<StreamParams>>
}

const REFRESH_MS = 10_000
const IDLE_MS = 10 * 60_000
/**
 * Audio segment bytes kept after their raw piece is made, for the mix windows that read them next
 * (each is in two or three windows): ~40 KB each, so a few windows of ~100 sessions.
 */
const RECENT_AUDIO_BYTES = 16 * 1024 * 1024
/** Raw inits known stored, so the next segment's identical init costs no lookup (names per session and channel). */
const STORED_INITS = 10_000

const segmentKey = (r: MediaSegment) => `${r.channel_id}/${r.index}`

export class Pieces {
  private readonly sessions = new Map<string, SessionWork>()
  private readonly inFlight = new Map<string, Promise<PieceInfo>>()
  private mixInitBytes: Promise<Uint8Array> | undefined
  /** Audio segments read lately, by `session/channel/index/sha256`, oldest first. */
  private readonly recentAudio = new Map<string, Uint8Array>()
  private recentAudioSize = 0
  private readonly storedInits = new Set<string>()
  private readonly ffmpeg: Semaphore
  private readonly encoders: AacEncoderPool
  private readonly decoders: AacDecoderPool
  /** How the native mix decodes a run (undefined: every window is mixed by ffmpeg). */
  private readonly runDecoder: RunDecoder | undefined
  /** Pieces this instance made (the ones it found stored are not counted). */
  piecesMade = 0

  constructor(
    private readonly tools: FfmpegTools,
    private readonly media: MediaStore,
    private readonly store: MuxerStore,
    concurrency: number,
    private readonly log: (message: string) => void,
    private readonly remux: RemuxMode = "native",
    mix: MixOptions = { mode: "native", faad: undefined },
    /** Parts per manifest chunk (`MANIFEST_CHUNK_PARTS`; tests: a few). */
    readonly chunkParts: number = MANIFEST_CHUNK_PARTS,
  ) {
    this.ffmpeg = new Semaphore(concurrency)
    // One encoder per window mixed at once (the semaphore admits `concurrency`).
    this.encoders = new AacEncoderPool(tools.ffmpeg, concurrency)
    this.decoders = new AacDecoderPool(tools.ffmpeg, concurrency)
    this.runDecoder =
      mix.mode === "native"
        ? pooledRunDecoder(this.decoders)
        : mix.mode === "faad" && mix.faad !== undefined
          ? faadRunDecoder(mix.faad)
          : undefined
  }

  /** Incremental work for one arriving record: its raw piece, then any settled mix windows. */
  async onRecord(record: MediaSegment, session: SessionChannels): Promise<void> {
    const channel = session.channels.find((c) => c.channel_id === record.channel_id)
    if (channel === undefined || !channel.store) return
    const work = await this.work(record.session_id)
    setRecord(work, record, true)
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

  /** The session's work, refreshed from NATS when stale (or `fresh` is asked for). */
  async work(sessionId: string, fresh = false): Promise<SessionWork> {
    const now = Date.now()
    for (const [id, w] of this.sessions) if (now - w.touchedAt > IDLE_MS) this.sessions.delete(id)
    let work = this.sessions.get(sessionId)
    if (work === undefined) {
      work = {
        records: new Map(),
        pieces: new Map(),
        refreshedAt: 0,
        recordsSequence: 0,
        piecesSequence: 0,
        recordCounts: new Map(),
        latestMs: Number.NEGATIVE_INFINITY,
        prefixes: new Map(),
        videoWindows: { e0: Number.NaN, windows: [] },
        cursor: { e0: Number.NaN, done: 0 },
        mixed: [],
        chunks: new Set(),
        prepared: { windows: 0, muxed: 0, raw: new Map() },
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
      // Only what was stored since the last refresh (other instances' records and pieces).
      const readRecords = async () => {
        const records: Array<{ record: MediaSegment; sequence: number }> = []
        for await (const { record, streamSequence } of this.media.readRecords(
          sessionId,
          work.recordsSequence,
        ))
          records.push({ record, sequence: streamSequence })
        return records
      }
      const [records, pieces] = await Promise.all([
        readRecords(),
        this.store.piecesAfter(sessionId, work.piecesSequence),
      ])
      // The first record of a segment wins, as in `MediaStore.list`.
      for (const { record, sequence } of records) {
        setRecord(work, record, false)
        work.recordsSequence = Math.max(work.recordsSequence, sequence)
      }
      for (const [key, piece] of pieces.pieces) if (!work.pieces.has(key)) work.pieces.set(key, piece)
      work.piecesSequence = Math.max(work.piecesSequence, pieces.lastSequence)
    }
    return work
  }

  private async mixSettled(
    work: SessionWork,
    sessionId: string,
    session: SessionChannels,
    arrived: MediaSegment | undefined,
  ): Promise<void> {
    const stored = session.channels.filter((c) => c.store)
    const audio = stored
      .filter((c) => c.type === "audio")
      .map((c) => ({
        layout: prefixLayout(work, c.channel_id),
        recordCount: work.recordCounts.get(c.channel_id) ?? 0,
      }))
    if (audio.length === 0) return
    const videoChannelId = defaultVideoChannel(session)
    let e0: number
    let windows: ReadonlyArray<AudioWindow>
    if (videoChannelId !== null) {
      const video = prefixLayout(work, videoChannelId)
      if (video === undefined) return
      e0 = video.startMs
      windows = extendVideoWindows(work, video.items, e0)
    } else {
      if (audio.some((a) => a.recordCount > 0 && a.layout === undefined)) return
      const layouts = audio.flatMap((a) => (a.layout === undefined ? [] : [a.layout]))
      if (layouts.length === 0) return
      e0 = Math.min(...layouts.map((l) => l.startMs))
      windows = windowsForAudio(e0, Math.max(...layouts.map((l) => l.endMs)))
    }
    if (work.cursor.e0 !== e0) {
      work.cursor = { e0, done: 0 }
      work.prepared = { windows: 0, muxed: 0, raw: new Map() }
    }
    // Audio arriving late (its channel was taken for absent) changes windows already mixed: go
    // back to the first one it reaches. Windows whose inputs did not change are found by name.
    if (arrived !== undefined) {
      // Window ends never go back: the first one ending after the segment's start, by bisection.
      let lo = 0
      let hi = windows.length
      while (lo < hi) {
        const mid = (lo + hi) >> 1
        if (e0 + ((windows[mid] as AudioWindow).to * 1000) / MIX_RATE > arrived.start_ms) hi = mid
        else lo = mid + 1
      }
      if (lo < windows.length && lo < work.cursor.done) work.cursor.done = lo
    }
    const layouts = audio.flatMap((a) => (a.layout === undefined ? [] : [a.layout]))
    work.mixed.length = Math.min(work.mixed.length, work.cursor.done)
    for (let i = work.cursor.done; i < windows.length; i++) {
      const window = windows[i] as AudioWindow
      if (!windowIsSettled(window, e0, audio, work.latestMs, Date.now() - work.createdAt)) break
      work.mixed[i] =
        window.to > window.from
          ? await this.ensureMix(work, sessionId, planMix(window, e0, layouts))
          : undefined
      work.cursor.done = i + 1
    }
    // About a quarter of a chunk of the muxed video (two parts per window) between two rounds.
    const every = Math.max(1, Math.floor(this.chunkParts / 8))
    if (videoChannelId !== null && work.cursor.done - work.prepared.windows >= every)
      await this.prepareChunks(work, sessionId, session, videoChannelId, e0, windows)
  }

  /**
   * Stores the full chunks of the default export's manifest (`ExportManifest`) over what is
   * settled so far: the muxed video up to the last window mixed, each stored channel's raw asset
   * up to its certain prefix. At the export, chunks with the same parts have the same name and
   * are not written again, so the stop writes only the tail. A chunk that comes out otherwise at
   * the export (paused time cut, a gap filled, a channel laid out anew) is simply written then.
   */
  private async prepareChunks(
    work: SessionWork,
    sessionId: string,
    session: SessionChannels,
    videoChannelId: string,
    e0: number,
    windows: ReadonlyArray<AudioWindow>,
  ): Promise<void> {
    work.prepared.windows = work.cursor.done
    const prefix = manifestChunkPrefix(sessionId)
    const video = prefixLayout(work, videoChannelId)
    if (video === undefined) return
    // Video parts as `assemble` places them, each with its window's mix (the settled ones).
    let settled = Math.min(video.usable.length, work.cursor.done)
    const audioShiftOf = (shift: number, timescale: number) => Math.round((shift * MIX_RATE) / timescale)
    const first = video.usable[0]?.piece as PieceInfo
    const shift = maxMinPts(video.usable, settled)
    const audioShift = audioShiftOf(shift, first.timescale)
    const audioParts: Array<PlacedPart | undefined> = []
    for (let i = 0; i < settled; i++) {
      const w = windows[i] as AudioWindow
      const piece = work.mixed[i]
      if (w.to > w.from && piece === undefined) {
        settled = i
        break
      }
      audioParts.push(placedMix(piece, w.from + audioShift))
    }
    const videoParts = placeParts(video.usable.slice(0, settled), e0, first.timescale, shift)
    const files: Array<{ key: string | undefined; parts: ReturnType<typeof rawFileParts> }> = [
      { key: undefined, parts: muxedParts(videoParts, audioParts, first.timescale, 2).parts },
    ]
    for (const channel of session.channels) {
      if (!channel.store) continue
      const layout = prefixLayout(work, channel.channel_id)
      const head = layout?.usable[0]?.piece
      if (layout === undefined || head === undefined) continue
      const rawShift = maxMinPts(layout.usable, layout.usable.length)
      const placed = placeParts(layout.usable, layout.startMs, head.timescale, rawShift)
      files.push({ key: channel.channel_id, parts: rawFileParts(placed) })
    }
    for (const file of files) {
      const done = file.key === undefined ? work.prepared.muxed : (work.prepared.raw.get(file.key) ?? 0)
      const chunks = manifestChunks(file.parts, prefix, {
        fromChunk: done,
        fullOnly: true,
        size: this.chunkParts,
      })
      if (chunks.length === 0) continue
      await this.store.putChunks(chunks, work.chunks)
      if (file.key === undefined) work.prepared.muxed = done + chunks.length
      else work.prepared.raw.set(file.key, done + chunks.length)
    }
  }

  /** The raw piece of one segment: remuxed to fMP4, or marked unusable when ffmpeg cannot read it. */
  ensureRaw(work: SessionWork, record: MediaSegment, type: "audio" | "video"): Promise<PieceInfo> {
    const key = rawKey(record.channel_id, record.index, record.sha256)
    return this.piece(work, record.session_id, key, async () => {
      const ts = await this.segmentBytes(record, type === "audio")
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
        remuxed = await this.ffmpeg.run(() => remuxSegment(this.tools, ts, type, this.remux))
      } catch (error) {
        this.log(
          `segment ${record.session_id}/${record.channel_id}/${record.index} is unusable: ${String(error)}`,
        )
        return failed(error instanceof Error ? error.message.slice(0, 300) : String(error))
      }
      const initName = `pieces/${record.session_id}/raw/${record.channel_id}/init-${shortHash(
        Buffer.from(remuxed.init).toString("base64"),
      )}.mp4`
      if (!this.storedInits.has(initName)) {
        await this.store.putObject(initName, remuxed.init)
        if (this.storedInits.size >= STORED_INITS) this.storedInits.clear()
        this.storedInits.add(initName)
      }
      return {
        info: { ...base, ...pieceTiming(remuxed.fragments, trackTimescale(remuxed.init)), init: initName },
        data: remuxed.fragments,
      }
    })
  }

  /**
   * A segment's bytes; an audio segment's are kept a while (`keep`), since the windows that mix it
   * come right after its raw piece.
   */
  private async segmentBytes(record: MediaSegment, keep: boolean): Promise<Uint8Array | undefined> {
    const key = `${record.session_id}/${record.channel_id}/${record.index}/${record.sha256}`
    const kept = this.recentAudio.get(key)
    if (kept !== undefined) return kept
    const bytes = await this.media.read(record.session_id, record.channel_id, record.index)
    if (keep && bytes !== undefined && !this.recentAudio.has(key)) {
      this.recentAudio.set(key, bytes)
      this.recentAudioSize += bytes.length
      for (const [oldest, data] of this.recentAudio) {
        if (this.recentAudioSize <= RECENT_AUDIO_BYTES) break
        this.recentAudio.delete(oldest)
        this.recentAudioSize -= data.length
      }
    }
    return bytes
  }

  /** The mixed audio of one planned window. */
  ensureMix(work: SessionWork, sessionId: string, plan: ReturnType<typeof planMix>): Promise<PieceInfo> {
    const key = `mix/${plan.signature}`
    return this.piece(work, sessionId, key, async () => {
      const runs = await Promise.all(
        plan.runs.map(async (run) => {
          const bytes = await Promise.all(run.records.map((r) => this.segmentBytes(r, true)))
          return { segments: bytes.filter((b): b is Uint8Array => b !== undefined), offset: run.offset }
        }),
      )
      const mixed = await this.ffmpeg.run(() => this.mixRuns(runs, plan.window.to - plan.window.from))
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

  /** A window's mix: in process with the long-lived decoders and encoder when it can, else by ffmpeg. */
  private async mixRuns(
    runs: ReadonlyArray<NativeMixInput>,
    length: number,
  ): Promise<{ fragment: Uint8Array; frames: number }> {
    if (this.runDecoder !== undefined) {
      try {
        return await mixWindowNative(this.runDecoder, this.encoders, runs, length)
      } catch (error) {
        // Not AAC-LC 48 kHz mono/stereo, or the decoder refused it: ffmpeg decides what can be read.
        if (!(error instanceof NotNativeMix || error instanceof FfmpegFailed)) throw error
        this.log(`mixing a window with ffmpeg: ${error.message.slice(0, 200)}`)
      }
    }
    const inputs = runs.map((run) => ({ ts: concat(run.segments), offset: run.offset }))
    return mixWindow(this.tools, inputs, length)
  }

  /** Ends the long-lived encoders and decoders (the muxer stops). */
  close(): void {
    this.encoders.close()
    this.decoders.close()
  }

  private ensureFill(work: SessionWork, sessionId: string, spec: FillSpec): Promise<PieceInfo> {
    const signature = shortHash(JSON.stringify({ v: 1, ...spec }), 32)
    const key = `fill/${signature}`
    return this.piece(work, sessionId, key, async () => {
      const filled = await this.ffmpeg.run(() => makeFill(this.tools, spec, this.remux))
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
      const { session_id: _, ...stored } = await this.store.putPiece(sessionId, info, data)
      work.pieces.set(key, stored)
      return stored
    })().finally(() => this.inFlight.delete(flightKey))
    this.inFlight.set(flightKey, made)
    return made
  }

  /** A channel's items with every gap replaced by a filler piece. */
  async withFills(
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

  /** The init segment a piece's fragments decode with. */
  async initOf(piece: PieceInfo): Promise<Uint8Array> {
    if (piece.init === undefined) throw new Error(`piece ${piece.key} has no init`)
    const init = await this.store.getObject(piece.init)
    if (init === undefined) throw new Error(`init ${piece.init} is missing`)
    return init
  }

  /** The mixed audio track's init (the same for every export; made once per process). */
  mixInit(): Promise<Uint8Array> {
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

/** The largest reordering delay (`min_pts`) of the first `count` segments, 0 at least. */
const maxMinPts = (usable: ReadonlyArray<UsableSegment>, count: number): number => {
  let max = 0
  for (let i = 0; i < count; i++) max = Math.max(max, (usable[i] as UsableSegment).piece.min_pts)
  return max
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

/**
 * Adds a record to the session's work. `replace`: an arriving record replaces one of the same
 * segment (a refresh keeps the first, as `MediaStore.list` does). A replaced record with other
 * bytes invalidates its channel's prefix, which is laid out again.
 */
const setRecord = (work: SessionWork, record: MediaSegment, replace: boolean): void => {
  const key = segmentKey(record)
  const known = work.records.get(key)
  if (known === undefined) {
    work.recordCounts.set(record.channel_id, (work.recordCounts.get(record.channel_id) ?? 0) + 1)
  } else if (!replace || known.sha256 === record.sha256) return
  else {
    work.prefixes.delete(record.channel_id)
    work.videoWindows = { e0: Number.NaN, windows: [] }
  }
  work.records.set(key, record)
  work.latestMs = Math.max(work.latestMs, record.start_ms + record.duration_ms)
}

/**
 * A channel's certain prefix (`layoutChannel(…, false)`), extended from where it stopped: records
 * 0, 1, … each present, made and usable, with no gap between them. O(new segments) per call.
 */
const prefixLayout = (work: SessionWork, channelId: string): ChannelLayout | undefined => {
  let usable = work.prefixes.get(channelId)
  if (usable === undefined) {
    usable = []
    work.prefixes.set(channelId, usable)
  }
  for (;;) {
    const record = work.records.get(`${channelId}/${usable.length}`)
    if (record === undefined) break
    const piece = work.pieces.get(rawKey(record.channel_id, record.index, record.sha256))
    if (piece === undefined || !piece.ok) break
    const prev = usable.at(-1)
    if (prev !== undefined && Math.abs(record.start_ms - (prev.startMs + prev.durationMs)) > GAP_MS) break
    usable.push({
      kind: "segment",
      record,
      piece,
      startMs: record.start_ms,
      durationMs: (piece.duration * 1000) / piece.timescale,
    })
  }
  const first = usable[0]
  const last = usable.at(-1)
  if (first === undefined || last === undefined) return undefined
  return {
    channelId,
    items: usable,
    startMs: first.startMs,
    endMs: last.startMs + last.durationMs,
    firstUsableMs: first.startMs,
    usable,
    gaps: [],
  }
}

/** `windowsForVideo(items, e0)`, cutting only the windows of items not seen before. */
const extendVideoWindows = (
  work: SessionWork,
  items: ReadonlyArray<LayoutItem>,
  e0: number,
): ReadonlyArray<AudioWindow> => {
  let cut = work.videoWindows
  // A prefix laid out again (or another origin) starts the windows over.
  if (cut.e0 !== e0 || cut.windows.length > items.length) {
    cut = { e0, windows: [] }
    work.videoWindows = cut
  }
  const from = cut.windows.length
  if (from < items.length) {
    const previous = cut.windows.at(-1)
    const more = windowsForVideo(items.slice(from), e0, previous?.to ?? 0)
    cut.windows.push(...more)
  }
  return cut.windows
}
