/**
 * @capture/muxer — the export pipeline: raw channel assets, the muxed video (HLS + MP4) and export
 * metadata, built incrementally from the media segments while a session runs.
 */
export * from "./Ffmpeg.js"
export * from "./Muxer.js"
