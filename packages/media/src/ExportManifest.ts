/**
 * An export's manifest (`videos/<video id>/manifest.json` in the exports bucket): the metadata
 * clients see, plus how to assemble every file from stored pieces. The muxer writes it once, last;
 * `ExportStore` reads it. Files are never copied: `video.mp4` is the init followed by every part,
 * an HLS segment is a run of parts, each part re-stamped as it is read (`stampFragments`).
 */
import { type AssetId, type ExportAsset, type ExportMetadata, rawAssetId } from "@capture/protocol"

/** One stored piece in a file, with what to stamp on it. */
export interface ManifestPart {
  readonly name: string
  readonly bytes: number
  readonly moofs: number
  readonly track: number
  readonly base: number
  /** In the track's timescale. */
  readonly duration: number
  /** Sequence number of its first moof. */
  readonly seq: number
}

/** A stored object and its size. */
export interface ManifestObject {
  readonly name: string
  readonly bytes: number
}

/** A file made of an init and parts (an MP4 or M4A). */
export interface ManifestFile {
  readonly file: string
  readonly contentType: string
  readonly init: ManifestObject
  readonly parts: ReadonlyArray<ManifestPart>
}

/** Everything an export serves, and where its bytes are. */
export interface Manifest {
  readonly v: 1
  readonly metadata: ExportMetadata
  /** The muxed video: `video.mp4`, and `init.mp4` + `seg/<n>.m4s` for HLS. */
  readonly video: ManifestFile
  readonly segments: ReadonlyArray<{
    readonly duration: number
    readonly first: number
    readonly count: number
  }>
  readonly raw: ReadonlyArray<ManifestFile>
}

/** The object holding an export's manifest. */
export const manifestName = (videoId: string): string => `videos/${videoId}/manifest.json`

/** A manifest as stored: those written before raw assets had ids lack `asset_id`. */
export type StoredManifest = Omit<Manifest, "metadata"> & {
  readonly metadata: Omit<ExportMetadata, "channels"> & {
    readonly channels: ReadonlyArray<Omit<ExportAsset, "asset_id"> & { readonly asset_id?: AssetId }>
  }
}

/** A stored manifest with every raw asset's id (derived from the video id, so always the same). */
export const upgradeManifest = (stored: StoredManifest): Manifest => ({
  ...stored,
  metadata: {
    ...stored.metadata,
    channels: stored.metadata.channels.map((asset) => ({
      ...asset,
      asset_id: asset.asset_id ?? rawAssetId(stored.metadata.video_id, asset.channel_id, asset.type),
    })),
  },
})

/** Where a raw asset id leads: the export holding it (`assets/<asset id>.json`). */
export interface AssetIndexEntry {
  readonly asset_id: AssetId
  readonly video_id: string
}

/** The object saying which export a raw asset id belongs to. */
export const assetIndexName = (assetId: string): string => `assets/${assetId}.json`
