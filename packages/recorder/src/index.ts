/**
 * @capture/recorder — the desktop capture client: channel discovery, ffmpeg capture into
 * keyframe-aligned MPEG-TS segments in a spool, and resumable, in-order upload to the ingest API.
 * The CLI's commands live in `@capture/recorder/cli`.
 */
export * from "./CaptureClient.js"
export * from "./ChannelDiscovery.js"
export * from "./Channels.js"
export * from "./Duration.js"
export * from "./Ffmpeg.js"
export * from "./FfmpegInputs.js"
export * from "./IngestClient.js"
export * from "./Spool.js"
export * from "./TypedEmitter.js"
