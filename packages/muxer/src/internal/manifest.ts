/**
 * An export's manifest (`videos/<video id>/manifest.json`): the metadata clients see, plus how to
 * assemble every file from stored pieces. Files are never copied: `video.mp4` is the init followed
 * by every part, an HLS segment is a run of parts, each part re-stamped as it is read.
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

export const assetIndexName = (assetId: string): string => `assets/${assetId}.json`

/** The HLS playlist of a manifest (fMP4 segments, VOD). */
export const playlist = (manifest: Manifest): string => {
  const target = Math.max(1, ...manifest.segments.map((s) => Math.ceil(s.duration)))
  const lines = [
    "#EXTM3U",
    "#EXT-X-VERSION:7",
    `#EXT-X-TARGETDURATION:${target}`,
    "#EXT-X-MEDIA-SEQUENCE:0",
    "#EXT-X-PLAYLIST-TYPE:VOD",
    "#EXT-X-INDEPENDENT-SEGMENTS",
    '#EXT-X-MAP:URI="init.mp4"',
    ...manifest.segments.flatMap((s, i) => [`#EXTINF:${s.duration.toFixed(6)},`, `seg/${i}.m4s`]),
    "#EXT-X-ENDLIST",
    "",
  ]
  return lines.join("\n")
}
