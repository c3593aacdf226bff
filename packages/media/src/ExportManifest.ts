/**
 * An export's manifest (`videos/<video id>/manifest.json` in the exports bucket): the metadata
 * clients see, plus how to assemble every file from stored pieces. The muxer writes it once, last;
 * `ExportStore` reads it, decoded with `StoredManifest`. Files are never copied: `video.mp4` is the
 * init followed by every part, an HLS segment is a run of parts, each part re-stamped as it is read
 * (`stampFragments`).
 *
 * A file's parts are stored in chunks of `MANIFEST_CHUNK_PARTS` (objects of their own, named by
 * their content: `<chunk prefix>/<hash>.json`), so the muxer writes most of them while the session
 * runs and the stop writes only the tail and the head. Manifests written before chunks list their
 * parts inline (`parts`), and still read.
 */
import { createHash } from "node:crypto"
import { AssetId, ExportAsset, ExportMetadata, rawAssetId } from "@capture/protocol"
import { Schema } from "effect"

const Size = Schema.Finite

/** One stored piece in a file, with what to stamp on it. */
export const ManifestPart = Schema.Struct({
  name: Schema.String,
  bytes: Size,
  moofs: Size,
  track: Size,
  base: Size,
  /** In the track's timescale. */
  duration: Size,
  /** Sequence number of its first moof. */
  seq: Size,
})
export type ManifestPart = typeof ManifestPart.Type

/** A stored object and its size. */
export const ManifestObject = Schema.Struct({ name: Schema.String, bytes: Size })
export type ManifestObject = typeof ManifestObject.Type

/** A file made of an init and parts (an MP4 or M4A). */
export const ManifestFile = Schema.Struct({
  file: Schema.String,
  contentType: Schema.String,
  init: ManifestObject,
  parts: Schema.Array(ManifestPart),
})
export type ManifestFile = typeof ManifestFile.Type

/** Everything an export serves, and where its bytes are. */
export const Manifest = Schema.Struct({
  v: Schema.Literal(1),
  metadata: ExportMetadata,
  /** The muxed video: `video.mp4`, and `init.mp4` + `seg/<n>.m4s` for HLS. */
  video: ManifestFile,
  segments: Schema.Array(Schema.Struct({ duration: Size, first: Size, count: Size })),
  raw: Schema.Array(ManifestFile),
})
export type Manifest = typeof Manifest.Type

/** Parts per chunk: a chunk starts at a multiple of it, so the same parts make the same chunk. */
export const MANIFEST_CHUNK_PARTS = 256

/** A run of a file's parts stored as an object of its own. */
export const ManifestChunk = Schema.Struct({ name: Schema.String, count: Size })
export type ManifestChunk = typeof ManifestChunk.Type

/** What a chunk object holds. */
export const ManifestChunkParts = Schema.Array(ManifestPart)

/** A file as stored: its parts inline (before chunks) or in chunks. */
export const StoredManifestFile = Schema.Struct({
  file: Schema.String,
  contentType: Schema.String,
  init: ManifestObject,
  parts: Schema.optionalKey(Schema.Array(ManifestPart)),
  chunks: Schema.optionalKey(Schema.Array(ManifestChunk)),
})
export type StoredManifestFile = typeof StoredManifestFile.Type

/** One chunk of a file's parts: its object's name (under `prefix`, named by its content) and bytes. */
export interface EncodedChunk {
  readonly name: string
  readonly count: number
  readonly data: Uint8Array
}

const encoder = new TextEncoder()
/** Chunks of one file read at once. */
const CHUNK_READS = 16

/**
 * A file's parts cut into chunks of `size` (`MANIFEST_CHUNK_PARTS`) from `fromChunk` on (every
 * chunk, or only the full ones with `fullOnly`), each named by a hash of its content under `prefix`.
 */
export const manifestChunks = (
  parts: ReadonlyArray<ManifestPart>,
  prefix: string,
  options: { readonly fromChunk?: number; readonly fullOnly?: boolean; readonly size?: number } = {},
): Array<EncodedChunk> => {
  const out: Array<EncodedChunk> = []
  const size = options.size ?? MANIFEST_CHUNK_PARTS
  for (let at = (options.fromChunk ?? 0) * size; at < parts.length; at += size) {
    const slice = parts.slice(at, at + size)
    if (options.fullOnly === true && slice.length < size) break
    const data = encoder.encode(JSON.stringify(slice))
    const hash = createHash("sha256").update(data).digest("hex").slice(0, 32)
    out.push({ name: `${prefix}/${hash}.json`, count: slice.length, data })
  }
  return out
}

/** The object holding an export's manifest. */
export const manifestName = (videoId: string): string => `videos/${videoId}/manifest.json`

/** A manifest as stored (decode it with this): those written before raw assets had ids lack `asset_id`. */
export const StoredManifest = Schema.Struct({
  ...Manifest.fields,
  video: StoredManifestFile,
  raw: Schema.Array(StoredManifestFile),
  metadata: Schema.Struct({
    ...ExportMetadata.fields,
    channels: Schema.Array(Schema.Struct({ ...ExportAsset.fields, asset_id: Schema.optionalKey(AssetId) })),
  }),
})
export type StoredManifest = typeof StoredManifest.Type

/** A stored manifest's metadata with every raw asset's id (derived from the video id, so always the same). */
export const upgradeMetadata = (stored: StoredManifest["metadata"]): ExportMetadata => ({
  ...stored,
  channels: stored.channels.map((asset) => ({
    ...asset,
    asset_id: asset.asset_id ?? rawAssetId(stored.video_id, asset.channel_id, asset.type),
  })),
})

/**
 * A stored manifest whole: every raw asset's id, each file's parts read from its chunks by
 * `chunkParts` (a chunk's parts, or undefined when it is missing: then so is the manifest).
 */
export const upgradeManifest = async (
  stored: StoredManifest,
  chunkParts: (name: string) => Promise<ReadonlyArray<ManifestPart> | undefined>,
): Promise<Manifest | undefined> => {
  const file = async (f: StoredManifestFile): Promise<ManifestFile | undefined> => {
    const { chunks, parts, ...rest } = f
    if (chunks === undefined) return { ...rest, parts: parts ?? [] }
    const read: Array<ReadonlyArray<ManifestPart> | undefined> = []
    for (let at = 0; at < chunks.length; at += CHUNK_READS)
      read.push(...(await Promise.all(chunks.slice(at, at + CHUNK_READS).map((c) => chunkParts(c.name)))))
    if (read.some((r, i) => r === undefined || r.length !== chunks[i]?.count)) return undefined
    return { ...rest, parts: (read as Array<ReadonlyArray<ManifestPart>>).flat() }
  }
  const [video, ...raw] = await Promise.all([stored.video, ...stored.raw].map(file))
  if (video === undefined || raw.some((r) => r === undefined)) return undefined
  return {
    ...stored,
    metadata: upgradeMetadata(stored.metadata),
    video,
    raw: raw as Array<ManifestFile>,
  }
}

/** Where a raw asset id leads: the export holding it (`assets/<asset id>.json`). */
export const AssetIndexEntry = Schema.Struct({ asset_id: AssetId, video_id: Schema.String })
export type AssetIndexEntry = typeof AssetIndexEntry.Type

/** The object saying which export a raw asset id belongs to. */
export const assetIndexName = (assetId: string): string => `assets/${assetId}.json`
