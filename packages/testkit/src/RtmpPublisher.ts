import { type ChildProcess, spawn } from "node:child_process"

export interface RtmpPublishOptions {
  /** The test pattern's size, `WxH`. */
  readonly size: string
  /** Frames a second; a keyframe every 2 s. */
  readonly rate: number
  /** How long to push; absent: until killed. */
  readonly seconds?: number | undefined
}

export interface RtmpPublisher {
  readonly child: ChildProcess
  readonly exited: Promise<{ readonly code: number | null; readonly stderr: string }>
}

/**
 * A real RTMP client: ffmpeg pushing a test pattern (H.264) and an AAC tone in real time to `url`.
 * It is in `running` until it exits, so a suite can kill whatever is left in its teardown.
 */
export const publishRtmp = (
  ffmpeg: string,
  url: string,
  options: RtmpPublishOptions,
  running: Set<ChildProcess>,
): RtmpPublisher => {
  const child = spawn(ffmpeg, [
    ...["-hide_banner", "-loglevel", "error", "-re"],
    ...["-f", "lavfi", "-i", `testsrc2=size=${options.size}:rate=${options.rate}`],
    ...["-f", "lavfi", "-i", "sine=frequency=440"],
    ...(options.seconds === undefined ? [] : ["-t", String(options.seconds)]),
    ...["-c:v", "libx264", "-preset", "ultrafast", "-g", String(options.rate * 2)],
    ...["-c:a", "aac", "-f", "flv", url],
  ])
  running.add(child)
  let stderr = ""
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.on("close", (code) => {
      running.delete(child)
      resolve({ code, stderr })
    }),
  )
  return { child, exited }
}
