/**
 * An export's manifest (`videos/<video id>/manifest.json` in the exports bucket): the metadata
 * clients see, plus how to assemble every file from stored pieces. The muxer writes it once, last;
 * `ExportStore` reads it, decoded with `StoredManifest`. Files are never copied: `video.mp4` is the
 * init followed by every part, an HLS segment is a run of parts, each part re-stamped as it is read
 * (`stampFragments`).
 */
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

/** The object holding an export's manifest. */
export const manifestName = (videoId: string): string => `videos/${videoId}/manifest.json`

/** A manifest as stored (decode it with this): those written before raw assets had ids lack `asset_id`. */
export const StoredManifest = Schema.Struct({
  ...Manifest.fields,
  metadata: Schema.Struct({
    ...ExportMetadata.fields,
    channels: Schema.Array(Schema.Struct({ ...ExportAsset.fields, asset_id: Schema.optionalKey(AssetId) })),
  }),
})
export type StoredManifest = typeof StoredManifest.Type

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
export const AssetIndexEntry = Schema.Struct({ asset_id: AssetId, video_id: Schema.String })
export type AssetIndexEntry = typeof AssetIndexEntry.Type

/** The object saying which export a raw asset id belongs to. */
export const assetIndexName = (assetId: string): string => `assets/${assetId}.json`
