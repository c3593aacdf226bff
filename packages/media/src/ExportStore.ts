/**
 * Reading exports, for any gateway instance: an export's metadata and its files, assembled on
 * the fly from the pieces in the exports bucket (`ExportBucket`, `capture_exports`) as its
 * manifest lays them out (`ExportManifest`). Nothing is copied at export time, which is why
 * exporting takes about as long whatever the recording's length.
 *
 * Files of an export, relative to `/media/{video_id}/`:
 * - `index.m3u8`, `init.mp4`, `seg/<n>.m4s`: HLS (fMP4 segments)
 * - `video.mp4`: the muxed video as one fragmented MP4 (byte ranges supported)
 * - `raw/<channel>.mp4` / `raw/<channel>.m4a`: each stored channel, stream-copied
 * - `export.json`: the metadata
 *
 * A raw asset also has an id of its own (`asset_id`: `m-…` for video, `a-…` for audio), which
 * `asset(id)` resolves to its export and file.
 *
 * ```ts
 * const exports = await ExportStore.open(nc)
 * const file = await exports.open(videoId, "video.mp4", { start: 0, end: 1023 })
 * if (file) for await (const chunk of file.body) res.write(chunk)
 * ```
 */
import {
  type AssetId,
  decodeJson,
  type ExportAsset,
  type ExportMetadata,
  type VideoTimeline,
} from "@capture/protocol"
import type { NatsConnection } from "@nats-io/transport-node"
import { ExportBucket, type ExportBucketOptions } from "./ExportBucket.js"
import {
  AssetIndexEntry,
  assetIndexName,
  type Manifest,
  type ManifestFile,
  type ManifestObject,
  type ManifestPart,
  manifestName,
  StoredManifest,
  upgradeManifest,
} from "./ExportManifest.js"
import { stampFragments, withDuration } from "./FragmentedMp4.js"
import {
  type CompiledPart,
  compiledPlaylist,
  playlist,
  rangePlaylist,
  rangeSegments,
} from "./internal/playlist.js"

/** A byte range, both ends inclusive (as in HTTP `Range: bytes=start-end`). */
export interface ByteRange {
  readonly start: number
  readonly end?: number
}

/** An export file ready to send. */
export interface ExportFile {
  readonly contentType: string
  /** The whole file's size in bytes. */
  readonly size: number
  /** The range `body` yields, inclusive (the whole file when no range was asked). */
  readonly start: number
  readonly end: number
  readonly body: AsyncIterable<Uint8Array>
  /** The body collected into one buffer. */
  bytes(): Promise<Uint8Array>
}

/** The asked range lies outside the file (HTTP 416). */
export class RangeNotSatisfiable extends Error {
  readonly _tag = "RangeNotSatisfiable"
  constructor(readonly size: number) {
    super(`range outside a file of ${size} bytes`)
  }
}

/** A raw asset with the export it belongs to. */
export interface RawAsset {
  readonly asset: ExportAsset
  readonly metadata: ExportMetadata
}

const encoder = new TextEncoder()
const MANIFEST_CACHE = 64
const ASSET_ID = /^(m|a)-[A-Za-z0-9_-]{1,64}$/
const decodeManifest = decodeJson(StoredManifest)
const decodeAssetEntry = decodeJson(AssetIndexEntry)

/** The read side of exports. */
export class ExportStore {
  private readonly manifests = new Map<string, Manifest>()

  private constructor(private readonly objects: ExportBucket) {}

  /** Opens (creating if missing) the exports bucket. */
  static async open(nc: NatsConnection, options: ExportBucketOptions = {}): Promise<ExportStore> {
    return new ExportStore(await ExportBucket.open(nc, options))
  }

  /** Reads through a bucket already open (the muxer's store is one). */
  static fromStore(store: ExportBucket): ExportStore {
    return new ExportStore(store)
  }

  /** The Object Store bucket holding exports: `capture_exports`. */
  get bucket(): string {
    return this.objects.bucket
  }

  /** An export's metadata, or `undefined` when there is no such export (yet). */
  async get(videoId: string): Promise<ExportMetadata | undefined> {
    return (await this.manifest(videoId))?.metadata
  }

  /**
   * The raw asset `assetId` names (`m-…` video, `a-…` audio) and its export's metadata, or
   * `undefined` when no export made such an asset.
   */
  async asset(assetId: string): Promise<RawAsset | undefined> {
    if (!ASSET_ID.test(assetId)) return undefined
    const entry = await this.objects.getJson(assetIndexName(assetId), decodeAssetEntry)
    if (entry === undefined) return undefined
    const metadata = await this.get(entry.video_id)
    const asset = metadata?.channels.find((a) => a.asset_id === (assetId as AssetId))
    return metadata === undefined || asset === undefined ? undefined : { asset, metadata }
  }

  /** The files an export serves. */
  async files(videoId: string): Promise<ReadonlyArray<string> | undefined> {
    const manifest = await this.manifest(videoId)
    if (manifest === undefined) return undefined
    return [
      "export.json",
      "index.m3u8",
      "init.mp4",
      "video.mp4",
      ...manifest.segments.map((_, i) => `seg/${i}.m4s`),
      ...manifest.raw.map((r) => r.file),
    ]
  }

  /**
   * One file of an export, optionally a byte range of it; `undefined` when the export or the file
   * does not exist. Throws `RangeNotSatisfiable` for a range past the end.
   */
  async open(videoId: string, file: string, range?: ByteRange): Promise<ExportFile | undefined> {
    const manifest = await this.manifest(videoId)
    if (manifest === undefined) return undefined
    if (file === "export.json")
      return this.inline("application/json", encoder.encode(JSON.stringify(manifest.metadata)), range)
    if (file === "index.m3u8")
      return this.inline("application/vnd.apple.mpegurl", encoder.encode(playlist(manifest)), range)
    if (file === "init.mp4") return this.assembled("video/mp4", manifest.video.init, [], range)
    if (file === manifest.video.file)
      return this.assembled("video/mp4", manifest.video.init, manifest.video.parts, range)
    const segment = /^seg\/(\d+)\.m4s$/.exec(file)
    if (segment !== null) {
      const s = manifest.segments[Number(segment[1])]
      if (s === undefined) return undefined
      return this.assembled(
        "video/iso.segment",
        undefined,
        manifest.video.parts.slice(s.first, s.first + s.count),
        range,
      )
    }
    const raw = manifest.raw.find((r: ManifestFile) => r.file === file)
    if (raw !== undefined) return this.assembled(raw.contentType, raw.init, raw.parts, range)
    return undefined
  }

  /**
   * The HLS playlist of `timeline` (seconds of the video) of an export: the segments overlapping
   * its ranges, beside `index.m3u8` so their URIs resolve alike. Undefined when there is no such
   * export, or no range holds any of it.
   */
  async rangePlaylist(videoId: string, timeline: VideoTimeline): Promise<ExportFile | undefined> {
    const manifest = await this.manifest(videoId)
    const text = manifest === undefined ? undefined : rangePlaylist(manifest, timeline)
    return text === undefined
      ? undefined
      : this.inline("application/vnd.apple.mpegurl", encoder.encode(text), undefined)
  }

  /**
   * The MP4 of `timeline` (seconds of the video), for players without HLS: the segments its range
   * playlist names, in that order, re-stamped to play one after another from 0 (each track's
   * fragments go on where its last one ended, sequence numbers count on), after `init.mp4`
   * declaring their length. Byte ranges as `open`. Undefined when there is no such export, or no
   * range holds any of it.
   */
  async rangeMp4(
    videoId: string,
    timeline: VideoTimeline,
    range?: ByteRange,
  ): Promise<ExportFile | undefined> {
    const manifest = await this.manifest(videoId)
    const segments = manifest === undefined ? undefined : rangeSegments(manifest, timeline)
    if (manifest === undefined || segments === undefined) return undefined
    const taken = segments.runs.flat().flatMap((i) => {
      const segment = manifest.segments[i]
      return segment === undefined ? [] : [segment]
    })
    const trackTime = new Map<number, number>()
    let sequence = 1
    const parts = taken
      .flatMap((segment) => manifest.video.parts.slice(segment.first, segment.first + segment.count))
      .map((part) => {
        const base = trackTime.get(part.track) ?? 0
        trackTime.set(part.track, base + part.duration)
        const stamped = { ...part, seq: sequence, base }
        sequence += part.moofs
        return stamped
      })
    const init = await this.objects.getObject(manifest.video.init.name)
    if (init === undefined) throw new Error(`export piece ${manifest.video.init.name} is missing`)
    const seconds = taken.reduce((sum, segment) => sum + segment.duration, 0)
    return this.assembled("video/mp4", withDuration(init, seconds), parts, range)
  }

  /**
   * One HLS playlist of ranges of several exports, in order (a search's shots compiled): each
   * export's segments named through `prefixOf(videoId)` (where its files are, seen from the
   * playlist). Undefined when an export is missing or no range holds any of them.
   */
  async compiledPlaylist(
    parts: ReadonlyArray<{ readonly videoId: string; readonly timeline: VideoTimeline }>,
    prefixOf: (videoId: string) => string,
  ): Promise<ExportFile | undefined> {
    const compiled: Array<CompiledPart> = []
    for (const part of parts) {
      const manifest = await this.manifest(part.videoId)
      if (manifest === undefined) return undefined
      compiled.push({ manifest, timeline: part.timeline, prefix: prefixOf(part.videoId) })
    }
    const text = compiledPlaylist(compiled)
    return text === undefined
      ? undefined
      : this.inline("application/vnd.apple.mpegurl", encoder.encode(text), undefined)
  }

  private async manifest(videoId: string): Promise<Manifest | undefined> {
    const cached = this.manifests.get(videoId)
    if (cached !== undefined) return cached
    if (!/^m-[A-Za-z0-9_-]{1,64}$/.test(videoId)) return undefined
    const stored = await this.objects.getJson(manifestName(videoId), decodeManifest)
    if (stored === undefined) return undefined
    const manifest = await upgradeManifest(stored, (name) => this.objects.chunkParts(name))
    if (manifest === undefined) {
      this.objects.log(`exports: a chunk of the manifest of ${videoId} is missing; read as absent`)
      return undefined
    }
    // Manifests never change once written: keep the latest few.
    if (this.manifests.size >= MANIFEST_CACHE) {
      const oldest = this.manifests.keys().next().value
      if (oldest !== undefined) this.manifests.delete(oldest)
    }
    this.manifests.set(videoId, manifest)
    return manifest
  }

  private inline(contentType: string, data: Uint8Array, range: ByteRange | undefined): ExportFile {
    const { start, end } = resolveRange(data.length, range)
    const slice = data.subarray(start, end + 1)
    return {
      contentType,
      size: data.length,
      start,
      end,
      body: (async function* () {
        if (slice.length > 0) yield slice
      })(),
      bytes: async () => slice,
    }
  }

  /** A file of `init` (stored, or given as bytes) and `parts`, each stamped as its part says. */
  private assembled(
    contentType: string,
    init: ManifestObject | Uint8Array | undefined,
    parts: ReadonlyArray<ManifestPart>,
    range: ByteRange | undefined,
  ): ExportFile {
    const pieces: Array<{ object: ManifestObject; part: ManifestPart | undefined; data?: Uint8Array }> = [
      ...(init === undefined
        ? []
        : init instanceof Uint8Array
          ? [{ object: { name: "init", bytes: init.length }, part: undefined, data: init }]
          : [{ object: init, part: undefined }]),
      ...parts.map((part) => ({ object: part, part })),
    ]
    const size = pieces.reduce((n, p) => n + p.object.bytes, 0)
    const { start, end } = resolveRange(size, range)
    const objects = this.objects
    const body = async function* (): AsyncGenerator<Uint8Array> {
      let offset = 0
      const wanted: Array<{ piece: (typeof pieces)[number]; from: number; to: number }> = []
      for (const piece of pieces) {
        const from = Math.max(start, offset) - offset
        const to = Math.min(end + 1, offset + piece.object.bytes) - offset
        if (to > from) wanted.push({ piece, from, to })
        offset += piece.object.bytes
      }
      const fetch = async ({ piece }: (typeof wanted)[number]) => {
        const data = piece.data ?? (await objects.getObject(piece.object.name))
        if (data === undefined) throw new Error(`export piece ${piece.object.name} is missing`)
        const { part } = piece
        return part === undefined
          ? data
          : stampFragments(data, { sequence: part.seq, trackId: part.track, baseDecodeTime: part.base })
      }
      // Fetch one piece ahead of the one being sent.
      let next = wanted[0] === undefined ? undefined : fetch(wanted[0])
      for (let i = 0; i < wanted.length; i++) {
        const current = next as Promise<Uint8Array>
        const following = wanted[i + 1]
        next = following === undefined ? undefined : fetch(following)
        next?.catch(() => undefined)
        const w = wanted[i] as (typeof wanted)[number]
        yield (await current).subarray(w.from, w.to)
      }
    }
    const file: ExportFile = {
      contentType,
      size,
      start,
      end,
      body: body(),
      bytes: async () => {
        const chunks: Uint8Array[] = []
        for await (const chunk of body()) chunks.push(chunk)
        return Buffer.concat(chunks)
      },
    }
    return file
  }
}

const resolveRange = (size: number, range: ByteRange | undefined): { start: number; end: number } => {
  if (range === undefined) return { start: 0, end: size - 1 }
  const end = Math.min(range.end ?? size - 1, size - 1)
  if (range.start < 0 || range.start >= size || end < range.start) throw new RangeNotSatisfiable(size)
  return { start: range.start, end }
}
