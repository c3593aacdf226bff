/**
 * What every pushed source (RTMP, WHIP) shares once its media reaches ffmpeg: one ffmpeg per
 * publish cuts the video and the audio into MPEG-TS segments of `seconds`, as the recorder cuts
 * them, into a directory of its own; each finished segment is handed to the publisher in order,
 * the last of each kind (once ffmpeg has ended) with `final`. A publish refused mid-way (a codec
 * the segments cannot carry) hands over nothing more and ends with `PushPublishRefused`.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import { readFile, rm } from "node:fs/promises"
import { join } from "node:path"
import type { CaptureError } from "@capture/protocol"

export type PushMediaKind = "video" | "audio"

export interface PushSegment {
  readonly kind: PushMediaKind
  readonly index: number
  /** Offset of its first sample from the publish's first, in ms. */
  readonly offsetMs: number
  readonly durationMs: number
  readonly bytes: Uint8Array
  readonly final: boolean
}

/** What an admitted publish feeds. */
export interface PushPublisher {
  /** Called once per segment, in order per kind; awaited before the next of that kind. */
  readonly onSegment: (segment: PushSegment) => Promise<void>
  /** The publish ended and every segment was handed over (or ffmpeg failed: `error`; refused: `PushPublishRefused`). */
  readonly onEnd: (error?: Error) => Promise<void>
}

/** The end of a publish refused after it was admitted (a codec the segments cannot carry). */
export class PushPublishRefused extends Error {}

/** An admission's answer: the publisher to feed, or why the publish is refused. */
export type PushAdmission = { readonly publisher: PushPublisher } | { readonly refused: CaptureError }

const LIST_POLL_MS = 200

interface ListedSegment {
  readonly file: string
  readonly startSeconds: number
  readonly endSeconds: number
}

const parseList = (text: string): ReadonlyArray<ListedSegment> =>
  text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      const [file = "", start = "0", end = "0"] = line.split(",")
      return { file, startSeconds: Number(start), endSeconds: Number(end) }
    })

/** Copies both kinds as they come (H.264 and AAC fit MPEG-TS as they are). */
export const COPY: Record<PushMediaKind, ReadonlyArray<string>> = {
  video: ["-c", "copy"],
  audio: ["-c", "copy"],
}

const segmentMuxer = (
  kind: PushMediaKind,
  codec: ReadonlyArray<string>,
  dir: string,
  seconds: number,
): ReadonlyArray<string> => [
  ...["-map", kind === "video" ? "0:v?" : "0:a?", ...codec],
  ...["-f", "segment", "-segment_format", "mpegts", "-segment_time", String(seconds)],
  ...["-reset_timestamps", "0", "-segment_list", join(dir, `${kind}.csv`), "-segment_list_type", "csv"],
  join(dir, `${kind}-%08d.ts`),
]

/** MPEG-TS packets are this long: a segment of anything else was cut short. */
const TS_PACKET_BYTES = 188

/**
 * Hands one kind's finished segments over in order, holding the newest back until it is known
 * final or not. A file ffmpeg left empty or cut short (interrupted at the end) is skipped.
 */
class SegmentFeed {
  /** Listed entries read so far. */
  private read = 0
  private handed = 0
  private held: { readonly entry: ListedSegment; readonly bytes: Uint8Array } | undefined
  constructor(
    private readonly kind: PushMediaKind,
    private readonly dir: string,
    private readonly publisher: PushPublisher,
  ) {}

  private async listed(): Promise<ReadonlyArray<ListedSegment>> {
    const text = await readFile(join(this.dir, `${this.kind}.csv`), "utf8").catch(() => "")
    return parseList(text)
  }

  private async hand(final: boolean): Promise<void> {
    const held = this.held
    if (held === undefined) return
    this.held = undefined
    await this.publisher.onSegment({
      kind: this.kind,
      index: this.handed++,
      offsetMs: Math.round(held.entry.startSeconds * 1000),
      durationMs: Math.max(0, Math.round((held.entry.endSeconds - held.entry.startSeconds) * 1000)),
      bytes: held.bytes,
      final,
    })
  }

  /** Hands over every listed segment but the newest (or all of them once `ended`, the last final). */
  async drain(ended: boolean): Promise<void> {
    const listed = await this.listed()
    for (; this.read < listed.length; this.read++) {
      const entry = listed[this.read] as ListedSegment
      const file = join(this.dir, entry.file)
      const bytes = await readFile(file).catch(() => new Uint8Array())
      await rm(file, { force: true })
      if (bytes.length === 0 || bytes.length % TS_PACKET_BYTES !== 0) continue
      await this.hand(false)
      this.held = { entry, bytes }
    }
    if (ended) await this.hand(true)
  }
}

export interface SegmentCutterOptions {
  readonly ffmpegPath: string
  /** ffmpeg's input arguments (`-f flv -i pipe:0`, an SDP, …). */
  readonly input: ReadonlyArray<string>
  /** How each kind is written into the segments (`COPY`, or an encoder). */
  readonly codecs: Record<PushMediaKind, ReadonlyArray<string>>
  /** A directory of its own, removed once the publish has ended. */
  readonly dir: string
  readonly seconds: number
  readonly publisher: PushPublisher
  /** ffmpeg has exited (after the last segments were handed over, or not, if refused). */
  readonly onExit: () => void
  /** Handing a segment over failed: the publish should end. */
  readonly onFailure: () => void
  readonly log?: ((message: string) => void) | undefined
}

/** One ffmpeg cutting one publish into segments. */
export class SegmentCutter {
  readonly ffmpeg: ChildProcessWithoutNullStreams
  private refusal: string | undefined
  private stopping = false

  constructor(options: SegmentCutterOptions) {
    const { dir, seconds, codecs, publisher } = options
    const ffmpeg = spawn(options.ffmpegPath, [
      ...["-hide_banner", "-loglevel", "error", ...options.input],
      ...segmentMuxer("video", codecs.video, dir, seconds),
      ...segmentMuxer("audio", codecs.audio, dir, seconds),
    ])
    this.ffmpeg = ffmpeg
    let stderr = ""
    ffmpeg.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-2_000)
    })
    ffmpeg.stdout.resume()

    const feeds = [new SegmentFeed("video", dir, publisher), new SegmentFeed("audio", dir, publisher)]
    let draining = Promise.resolve()
    const drainAll = (ended: boolean) => {
      draining = draining.then(async () => {
        for (const feed of feeds) await feed.drain(ended)
      })
      return draining
    }
    const timer = setInterval(() => void drainAll(false).catch(options.onFailure), LIST_POLL_MS)
    ffmpeg.on("close", (code) => {
      clearInterval(timer)
      // Refused mid-way (a codec the segments cannot carry): what ffmpeg still had is not handed over.
      const refusal = this.refusal
      const ending =
        refusal !== undefined
          ? draining.then(() => publisher.onEnd(new PushPublishRefused(refusal)))
          : drainAll(true).then(
              () =>
                publisher.onEnd(
                  code === 0 || this.stopping
                    ? undefined
                    : new Error(`ffmpeg exited with ${code}: ${stderr.trim()}`),
                ),
              (error: unknown) => publisher.onEnd(error instanceof Error ? error : new Error(String(error))),
            )
      void ending
        .catch((error: unknown) => options.log?.(`publish end: ${String(error)}`))
        .finally(() => rm(dir, { recursive: true, force: true }))
      options.onExit()
    })
  }

  /** Ends ffmpeg at once: nothing more is handed over, and the publish ends with `PushPublishRefused`. */
  refuse(reason: string): void {
    this.refusal ??= reason
    this.ffmpeg.kill("SIGKILL")
  }

  /** Asks ffmpeg to finish (a live input with no end of its own): it writes out what it has. */
  stop(): void {
    if (this.stopping) return
    this.stopping = true
    // Once running, ffmpeg lets a single SIGINT wait for the next input packet (none may come):
    // the second one interrupts the read, and it still finishes its outputs. SIGKILL if it hangs.
    const running = () => this.ffmpeg.exitCode === null && this.ffmpeg.signalCode === null
    this.ffmpeg.kill("SIGINT")
    setTimeout(() => running() && this.ffmpeg.kill("SIGINT"), 300).unref()
    setTimeout(() => running() && this.ffmpeg.kill("SIGKILL"), 20_000).unref()
  }
}
