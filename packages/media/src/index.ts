/**
 * @capture/media — media segments: the JetStream Object Store of recorded segments and the stream
 * of their records, shared by ingest (gateway) and the muxer.
 */
export * from "./MediaStore.js"
export * from "./ObjectBucket.js"
