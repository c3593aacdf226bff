/**
 * A display rtstream's long-lived decoder: one ffmpeg per rtstream lane, fed the lane's segments
 * in order on its stdin as one MPEG-TS stream, instead of one ffmpeg per segment. ffmpeg's start
 * (~200 ms of CPU under load, most of decoding a 2 s segment) is paid once per lane.
 *
 * ffmpeg selects the first frame of each `1/fps` slot of a grid anchored at the first frame it was
 * fed (`select`, which emits a frame as soon as it is decoded; `fps` would hold it for the next).
 * The segment's own PTS (read here from its PES headers) say how many frames that gives, and
 * `showinfo` names each frame's PTS, so every frame is checked to belong to the segment it is
 * given for. Anything unexpected (a segment out of order, a PTS gap or a grid that does not line
 * up, B-frames, a frame late or not the one expected) ends the process and returns undefined:
 * the caller decodes that segment on its own, and the next segment starts a new process.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import type { GreyFrame } from "./Frames.js"

const PACKET = 188
const TICKS = 90_000
/** Below a frame's length in 90 kHz ticks at any frame rate a screen is recorded at. */
const EPSILON_TICKS = 45
/** A frame this close to a slot's start (in slots) counts in it, on both sides of the grid. */
const EPSILON_SLOTS = 0.001

/** The PTS of each video PES (stream ids 0xE0–0xEF) of an MPEG-TS segment, in stream order. */
export const videoPtsOf = (ts: Uint8Array): Array<number> => {
  const pts: Array<number> = []
  for (let at = 0; at + PACKET <= ts.length; at += PACKET) {
    if (ts[at] !== 0x47) return []
    if (((ts[at + 1] as number) & 0x40) === 0) continue
    const control = (ts[at + 3] as number) >> 4
    if ((control & 0x1) === 0) continue
    let p = at + 4
    if ((control & 0x2) !== 0) p += 1 + (ts[p] as number)
    if (p + 14 > at + PACKET || ts[p] !== 0 || ts[p + 1] !== 0 || ts[p + 2] !== 1) continue
    const streamId = ts[p + 3] as number
    if (streamId < 0xe0 || streamId > 0xef || ((ts[p + 7] as number) & 0x80) === 0) continue
    const b = ts.subarray(p + 9, p + 14)
    pts.push(
      ((b[0] as number) & 0x0e) * 2 ** 29 +
        (b[1] as number) * 2 ** 22 +
        ((b[2] as number) >> 1) * 2 ** 15 +
        (b[3] as number) * 2 ** 7 +
        ((b[4] as number) >> 1),
    )
  }
  return pts
}

/** How long one segment's frames may take to come out before the lane falls back. */
const FRAME_TIMEOUT_MS = 10_000
/** A decoder fed nothing for this long is ended (the display stopped, or another worker took it). */
const IDLE_MS = 60_000

interface Waiting {
  readonly count: number
  readonly resolve: () => void
}

export class DisplayDecoder {
  private child: ChildProcessWithoutNullStreams | undefined
  private origin = 0
  private lastPts = Number.NaN
  private nextIndex = -1
  private pgm: Array<Buffer> = []
  private pgmBytes = 0
  private readonly frames: Array<Uint8Array> = []
  private width = 0
  private height = 0
  private readonly shownPts: Array<number> = []
  private stderr = ""
  private waiting: Waiting | undefined
  private idle: ReturnType<typeof setTimeout> | undefined
  /**
   * Set when a process just started for a segment did not give its frames in time: the stream is
   * one this decoder cannot follow, so the lane decodes per segment from then on, without waiting.
   */
  private broken = false

  constructor(
    private readonly ffmpeg: string,
    readonly fps: number,
  ) {}

  /**
   * Segment `index`'s frames, grey, `1/fps` apart from its first (as `decodeFrames` gives them),
   * or undefined when this decoder cannot give them (the caller decodes the segment on its own).
   */
  async decode(index: number, bytes: Uint8Array): Promise<Array<GreyFrame> | undefined> {
    if (this.broken) return undefined
    clearTimeout(this.idle)
    this.idle = setTimeout(() => void this.close(), IDLE_MS)
    this.idle.unref()
    const pts = videoPtsOf(bytes)
    const first = pts[0]
    if (first === undefined || pts.some((p, i) => i > 0 && p <= (pts[i - 1] as number))) {
      void this.close()
      return undefined
    }
    const slotTicks = TICKS / this.fps
    const slotOf = (p: number) => Math.floor((p - this.origin) / slotTicks + EPSILON_SLOTS)
    const last = pts[pts.length - 1] as number
    const frameTicks = pts.length > 1 ? (last - first) / (pts.length - 1) : 0
    const continues =
      this.child !== undefined &&
      this.child.exitCode === null &&
      index === this.nextIndex &&
      this.frames.length === 0 &&
      Math.abs(first - this.lastPts - frameTicks) <= EPSILON_TICKS &&
      Math.abs((first - this.origin) / slotTicks - Math.round((first - this.origin) / slotTicks)) <
        EPSILON_TICKS / slotTicks
    if (!continues) {
      void this.close()
      this.start(first)
    }
    // The frames ffmpeg's `select` takes: the first of each slot.
    const selected: Array<number> = []
    let previous = continues ? this.lastPts : Number.NaN
    for (const p of pts) {
      if (Number.isNaN(previous) || slotOf(p) > slotOf(previous)) selected.push(p)
      previous = p
    }
    // The segment's last frame leaves the demuxer only with the next one's data.
    if (selected[selected.length - 1] === last && pts.length > 1) {
      void this.close()
      return undefined
    }
    const child = this.child as ChildProcessWithoutNullStreams
    const arrived = new Promise<boolean>((resolve) => {
      const settle = (ok: boolean) => {
        clearTimeout(timer)
        child.off("close", exited)
        resolve(ok)
      }
      const exited = () => settle(false)
      const timer = setTimeout(() => settle(false), FRAME_TIMEOUT_MS)
      child.once("close", exited)
      this.waiting = { count: selected.length, resolve: () => settle(true) }
      this.check()
    })
    child.stdin.write(bytes)
    const ok = await arrived
    this.waiting = undefined
    const frames = this.frames.splice(0, selected.length)
    const shown = this.shownPts.splice(0, selected.length)
    if (!ok || frames.length !== selected.length || shown.some((p, i) => p !== selected[i])) {
      if (!ok && !continues) this.broken = true
      void this.close()
      return undefined
    }
    this.nextIndex = index + 1
    this.lastPts = last
    // As `decodeFrames` gives them: slot k of the segment holds the frame shown at its start.
    const base = slotOf(first)
    const out: Array<GreyFrame> = []
    for (const [i, p] of selected.entries()) {
      const slot = slotOf(p) - base
      const pixels = frames[i] as Uint8Array
      while (out.length <= slot) {
        out.push({ offsetMs: (out.length * 1000) / this.fps, width: this.width, height: this.height, pixels })
      }
    }
    return out
  }

  /** Ends the process, if any; resolves once it has exited. */
  close(): Promise<void> {
    clearTimeout(this.idle)
    const child = this.child
    this.child = undefined
    this.frames.length = 0
    this.shownPts.length = 0
    this.pgm = []
    this.pgmBytes = 0
    this.nextIndex = -1
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
    const exited = new Promise<void>((resolve) => child.once("close", () => resolve()))
    child.kill("SIGKILL")
    return exited
  }

  private start(origin: number): void {
    this.origin = origin
    this.lastPts = Number.NaN
    this.stderr = ""
    const slot = `floor((t-${origin / TICKS})*${this.fps}+${EPSILON_SLOTS})`
    const child = spawn(
      this.ffmpeg,
      [
        "-nostdin",
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "info",
        "-threads",
        "1",
        // Small probes: the stream is read as it comes, not 5 MB ahead.
        "-probesize",
        "32",
        "-analyzeduration",
        "0",
        "-copyts",
        "-f",
        "mpegts",
        "-i",
        "pipe:0",
        "-map",
        "0:v:0",
        "-an",
        "-vf",
        `select='isnan(prev_t)+gt(${slot},${slot.replaceAll("t-", "prev_t-")})',showinfo,scale='min(1920,iw)':-2,format=gray`,
        "-vsync",
        "passthrough",
        "-f",
        "image2pipe",
        "-c:v",
        "pgm",
        "-flush_packets",
        "1",
        "pipe:1",
      ],
      { stdio: ["pipe", "pipe", "pipe"] },
    )
    this.child = child
    child.stdin.on("error", () => undefined)
    child.on("error", () => undefined)
    child.stdout.on("data", (chunk: Buffer) => {
      if (this.child !== child) return
      this.pgm.push(chunk)
      this.pgmBytes += chunk.length
      this.takeFrames()
      this.check()
    })
    child.stderr.setEncoding("utf8")
    child.stderr.on("data", (chunk: string) => {
      if (this.child !== child) return
      this.stderr += chunk
      for (let nl = this.stderr.indexOf("\n"); nl >= 0; nl = this.stderr.indexOf("\n")) {
        const line = this.stderr.slice(0, nl)
        this.stderr = this.stderr.slice(nl + 1)
        const shown = /showinfo.* pts:\s*(-?\d+)\s+pts_time:/.exec(line)
        if (shown !== null) this.shownPts.push(Number(shown[1]))
      }
      this.check()
    })
  }

  /** Whole PGM frames out of what ffmpeg wrote so far (`P5\n<w> <h>\n255\n<bytes>` each). */
  private takeFrames(): void {
    // Concatenated only once a whole frame (of the size seen last) can be there.
    if (this.pgmBytes < this.width * this.height) return
    let all = this.pgm.length === 1 ? (this.pgm[0] as Buffer) : Buffer.concat(this.pgm)
    for (;;) {
      const header = /^P5\s+(\d+)\s+(\d+)\s+255\s/.exec(all.subarray(0, 32).toString("latin1"))
      if (header === null) break
      const width = Number(header[1])
      const height = Number(header[2])
      const size = header[0].length + width * height
      if (all.length < size) break
      this.width = width
      this.height = height
      this.frames.push(new Uint8Array(all.subarray(header[0].length, size)))
      all = all.subarray(size)
    }
    this.pgm = all.length === 0 ? [] : [all]
    this.pgmBytes = all.length
  }

  private check(): void {
    const waiting = this.waiting
    if (waiting === undefined) return
    if (this.frames.length >= waiting.count && this.shownPts.length >= waiting.count) waiting.resolve()
  }
}
