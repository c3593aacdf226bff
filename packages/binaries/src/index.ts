/**
 * @capture/binaries — finding executables: ffmpeg / ffprobe, and any tool on PATH.
 */
export * from "./Executables.js"
export * from "./Ffmpeg.js"
