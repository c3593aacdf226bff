import { spawn } from "node:child_process"
import { describe, expect, it } from "vitest"
import {
  captureArgs,
  defaultCaptureSettings,
  inputArgs,
  syntheticAudioGraph,
  syntheticVideoGraph,
} from "../src/FfmpegInputs.js"
import { ffmpeg } from "./support/media.js"

const settings = defaultCaptureSettings

/** `metadata=mode=print` output as (pts_time, value of `key`) pairs. */
const metadataValues = (text: string, key: string): ReadonlyArray<{ at: number; value: number }> =>
  text
    .split(/^frame:/m)
    .map((block) => ({
      at: Number(/pts_time:([\d.]+)/.exec(block)?.[1]),
      value: Number(new RegExp(`${key.replaceAll(".", "\\.")}=(-?[\\d.]+)`).exec(block)?.[1]),
    }))
    .filter((entry) => Number.isFinite(entry.at) && Number.isFinite(entry.value))

const output = (args: ReadonlyArray<string>): Promise<string> =>
  new Promise((resolve, reject) => {
    const child = spawn(ffmpeg, [...args], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
    })
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    child.on("close", (code) => (code === 0 ? resolve(stdout) : reject(new Error(stderr))))
  })

describe("ffmpeg command lines", () => {
  it("captures Linux devices with x11grab and PulseAudio", () => {
    expect(
      inputArgs({ kind: "x11grab", display: ":0", x: 1920, y: 0, width: 2560, height: 1440 }, settings),
    ).toEqual([
      ...["-f", "x11grab", "-thread_queue_size", "512", "-framerate", "30", "-draw_mouse", "1"],
      ...["-video_size", "2560x1440", "-i", ":0+1920,0"],
    ])
    expect(inputArgs({ kind: "pulse", device: "speaker.monitor" }, settings)).toEqual([
      ...["-f", "pulse", "-thread_queue_size", "512", "-i", "speaker.monitor"],
    ])
  })

  it("builds (untested) macOS and Windows inputs", () => {
    expect(inputArgs({ kind: "avfoundation", media: "video", device: "1" }, settings)).toEqual([
      ...["-f", "avfoundation", "-capture_cursor", "1", "-framerate", "30", "-i", "1:none"],
    ])
    expect(inputArgs({ kind: "avfoundation", media: "audio", device: "default" }, settings)).toEqual([
      ...["-f", "avfoundation", "-i", "none:default"],
    ])
    expect(inputArgs({ kind: "gdigrab" }, settings)).toEqual([
      ...["-f", "gdigrab", "-framerate", "30", "-draw_mouse", "1", "-i", "desktop"],
    ])
    expect(inputArgs({ kind: "ddagrab", outputIndex: 1 }, settings)).toEqual([
      ...["-f", "lavfi", "-i", "ddagrab=output_idx=1:framerate=30,hwdownload,format=bgra"],
    ])
    expect(inputArgs({ kind: "dshow", media: "audio", device: "Stereo Mix (Realtek)" }, settings)).toEqual([
      ...[
        "-f",
        "dshow",
        "-thread_queue_size",
        "512",
        "-audio_buffer_size",
        "50",
        "-i",
        "audio=Stereo Mix (Realtek)",
      ],
    ])
  })

  it("forces keyframes on segment boundaries and writes a CSV segment list", () => {
    const args = captureArgs(
      { kind: "synthetic", media: "video" },
      { pattern: "/spool/cap-1/display:1/%08d.ts", startIndex: 7, listFile: "/spool/run.csv" },
      { ...settings, drawText: false },
    )
    const after = (flag: string) => args[args.indexOf(flag) + 1]
    expect(after("-g")).toBe("50")
    expect(after("-force_key_frames")).toBe("expr:gte(t,n_forced*2)")
    expect(after("-preset")).toBe("veryfast")
    expect(after("-tune")).toBe("zerolatency")
    expect(after("-f")).toBe("lavfi")
    expect(args.slice(args.lastIndexOf("-f"))).toEqual([
      ...["-f", "segment", "-segment_format", "mpegts", "-segment_time", "2", "-reset_timestamps", "0"],
      ...["-segment_start_number", "7", "-segment_list", "/spool/run.csv", "-segment_list_type", "csv"],
      ...["-segment_list_flags", "+live", "/spool/cap-1/display:1/%08d.ts"],
    ])
  })

  it("flashes a white frame and beeps at the same instants: each whole second", async () => {
    const video = { width: 160, height: 90, frameRate: 25 }
    const stats = await output([
      ...["-v", "error", "-f", "lavfi", "-i", syntheticVideoGraph(video, true), "-t", "2.9"],
      ...["-vf", "signalstats,metadata=mode=print:file=-", "-f", "null", "-"],
    ])
    const white = metadataValues(stats, "lavfi.signalstats.YAVG")
      .filter((frame) => frame.value > 200)
      .map((frame) => frame.at)
    expect(white).toEqual([0, 1, 2])

    // The beep adds a louder tone for a few tens of ms: RMS over 10 ms windows rises exactly there.
    const levels = await output([
      ...["-v", "error", "-f", "lavfi", "-i", syntheticAudioGraph(440, 4), "-t", "2.9"],
      ...[
        "-af",
        "asetnsamples=n=480,astats=metadata=1:reset=1,ametadata=mode=print:key=lavfi.astats.Overall.RMS_level:file=-",
      ],
      ...["-f", "null", "-"],
    ])
    const windows = metadataValues(levels, "lavfi.astats.Overall.RMS_level").map(({ at, value }) => ({
      at,
      rms: value,
    }))
    const quiet = Math.min(...windows.map((window) => window.rms))
    const beeps = windows.filter((window) => window.rms > quiet + 3).map((window) => window.at)
    expect(beeps.length).toBeGreaterThan(0)
    for (const at of beeps) expect(at - Math.floor(at)).toBeLessThan(0.1)
    expect([...new Set(beeps.map(Math.floor))]).toEqual([0, 1, 2])
  })
})
