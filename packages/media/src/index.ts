/**
 * @capture/media — the storage layer of recorded media: the segment store (the JetStream Object
 * Store of recorded segments and the stream of their records) and the export store (the exports
 * bucket the muxer writes and the gateway reads, with the manifests that lay out each export).
 */
export * from "./ExportBucket.js"
export * from "./ExportManifest.js"
export * from "./ExportStore.js"
export * from "./FragmentedMp4.js"
export * from "./MediaStore.js"
export * from "./ObjectBucket.js"
