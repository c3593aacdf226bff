/**
 * An RTMP listener for pushed sources (OBS, ffmpeg): node-media-server's RTMP protocol parser
 * (its handshake, chunk stream and AMF commands; not its server) behind our own TCP listener.
 * A publish is admitted or refused by `admit` (the stream key); an admitted one is answered
 * `NetStream.Publish.Start` and written as FLV to one ffmpeg that copies (no re-encoding) the
 * video and the audio into MPEG-TS segments of `segmentSeconds`, as the recorder cuts them. Each
 * finished segment is handed to the publisher in order; the last of each kind of this publish,
 * once ffmpeg has ended, with `final`. A refused publish is answered `NetStream.Publish.BadName`
 * with the reason and closed before any media is written anywhere; so is one whose codecs the
 * segments cannot carry (H.264 video and AAC audio only).
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { createServer, type Server, type Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import nmsLogger from "node-media-server/src/core/logger.js"
import Flv from "node-media-server/src/protocol/flv.js"
import Rtmp from "node-media-server/src/protocol/rtmp.js"

// Its logger writes to stdout (a client's malformed AMF included); our own log says what matters.
nmsLogger.log = () => undefined

export type RtmpMediaKind = "video" | "audio"

export interface RtmpSegment {
  readonly kind: RtmpMediaKind
  readonly index: number
  /** Offset of its first sample from the publish's first, in ms. */
  readonly offsetMs: number
  readonly durationMs: number
  readonly bytes: Uint8Array
  readonly final: boolean
}

/** What an admitted publish feeds. */
export interface RtmpPublisher {
  /** Called once per segment, in order per kind; awaited before the next of that kind. */
  readonly onSegment: (segment: RtmpSegment) => Promise<void>
  /** The publish ended and every segment was handed over (or ffmpeg failed: `error`; refused: `RtmpPublishRefused`). */
  readonly onEnd: (error?: Error) => Promise<void>
}

/** The end of a publish refused after it was admitted (a codec the segments cannot carry). */
export class RtmpPublishRefused extends Error {}

/** `admit`'s answer: the publisher to feed, or why the publish is refused. */
export type RtmpAdmission = { readonly publisher: RtmpPublisher } | { readonly refused: string }

export interface RtmpIngestOptions {
  readonly host: string
  readonly port: number
  readonly ffmpegPath: string
  readonly segmentSeconds?: number
  /**
   * `rtmp://host/<app>/<name>`: a publisher, or a refusal. `end` closes the publish from our side
   * (ffmpeg still cuts and hands over what came, the last segments `final`).
   */
  readonly admit: (publish: {
    readonly app: string
    readonly name: string
    readonly end: () => void
  }) => Promise<RtmpAdmission>
  readonly log?: (message: string) => void
}

/** FLV tag types of the packets ffmpeg gets: audio and video (script data is left out). */
const AUDIO_TAG = 8
const VIDEO_TAG = 9
/** FLV codec ids the segments carry: AAC audio, H.264 (AVC) video. */
const AAC = 10
const H264 = 7
/** Packets held while a publish is being admitted (a few seconds of media at most). */
const MAX_PENDING_PACKETS = 2_000
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

const segmentMuxer = (kind: RtmpMediaKind, dir: string, seconds: number): ReadonlyArray<string> => [
  ...["-map", kind === "video" ? "0:v?" : "0:a?", "-c", "copy"],
  ...["-f", "segment", "-segment_format", "mpegts", "-segment_time", String(seconds)],
  ...["-reset_timestamps", "0", "-segment_list", join(dir, `${kind}.csv`), "-segment_list_type", "csv"],
  join(dir, `${kind}-%08d.ts`),
]

/** Hands one kind's finished segments over in order, holding back the newest until it is known final or not. */
class SegmentFeed {
  private handed = 0
  constructor(
    private readonly kind: RtmpMediaKind,
    private readonly dir: string,
    private readonly publisher: RtmpPublisher,
  ) {}

  private async listed(): Promise<ReadonlyArray<ListedSegment>> {
    const text = await readFile(join(this.dir, `${this.kind}.csv`), "utf8").catch(() => "")
    return parseList(text)
  }

  /** Hands over every listed segment but the newest (or all of them once `ended`). */
  async drain(ended: boolean): Promise<void> {
    const listed = await this.listed()
    const upTo = ended ? listed.length : listed.length - 1
    for (; this.handed < upTo; this.handed++) {
      const entry = listed[this.handed] as ListedSegment
      await this.publisher.onSegment({
        kind: this.kind,
        index: this.handed,
        offsetMs: Math.round(entry.startSeconds * 1000),
        durationMs: Math.max(0, Math.round((entry.endSeconds - entry.startSeconds) * 1000)),
        bytes: await readFile(join(this.dir, entry.file)),
        final: ended && this.handed === listed.length - 1,
      })
      await rm(join(this.dir, entry.file), { force: true })
    }
  }
}

class Publish {
  private ffmpeg: ChildProcessWithoutNullStreams | undefined
  private readonly pending: Array<Buffer> = []
  private refused = false
  private refusal = ""
  private ended = false

  constructor(
    private readonly socket: Socket,
    private readonly options: RtmpIngestOptions,
    /** Tells the publisher why, in RTMP's own way, before the socket closes. */
    private readonly tellRefused: (reason: string) => void,
  ) {}

  admitted(publisher: RtmpPublisher, dir: string): void {
    const seconds = this.options.segmentSeconds ?? 2
    const ffmpeg = spawn(this.options.ffmpegPath, [
      ...["-hide_banner", "-loglevel", "error", "-f", "flv", "-i", "pipe:0"],
      ...segmentMuxer("video", dir, seconds),
      ...segmentMuxer("audio", dir, seconds),
    ])
    this.ffmpeg = ffmpeg
    ffmpeg.stdin.on("error", () => this.socket.destroy())
    let stderr = ""
    ffmpeg.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-2_000)
    })
    ffmpeg.stdout.resume()
    ffmpeg.stdin.write(Flv.createHeader(true, true))
    for (const tag of this.pending.splice(0)) ffmpeg.stdin.write(tag)
    if (this.ended) ffmpeg.stdin.end()

    const feeds = [new SegmentFeed("video", dir, publisher), new SegmentFeed("audio", dir, publisher)]
    let draining = Promise.resolve()
    const drainAll = (ended: boolean) => {
      draining = draining.then(async () => {
        for (const feed of feeds) await feed.drain(ended)
      })
      return draining
    }
    const timer = setInterval(() => void drainAll(false).catch(() => this.socket.destroy()), LIST_POLL_MS)
    ffmpeg.on("close", (code) => {
      clearInterval(timer)
      // Refused mid-way (a codec the segments cannot carry): what ffmpeg still had is not handed over.
      const ending = this.refused
        ? draining.then(() => publisher.onEnd(new RtmpPublishRefused(this.refusal)))
        : drainAll(true).then(
            () =>
              publisher.onEnd(
                code === 0 ? undefined : new Error(`ffmpeg exited with ${code}: ${stderr.trim()}`),
              ),
            (error: unknown) => publisher.onEnd(error instanceof Error ? error : new Error(String(error))),
          )
      void ending
        .catch((error: unknown) => this.options.log?.(`rtmp publish end: ${String(error)}`))
        .finally(() => rm(dir, { recursive: true, force: true }))
      this.socket.destroy()
    })
  }

  refuse(reason: string): void {
    if (this.refused) return
    this.refused = true
    this.refusal = reason
    this.pending.length = 0
    this.options.log?.(`rtmp publish refused: ${reason}`)
    this.ffmpeg?.kill("SIGKILL")
    this.tellRefused(reason)
  }

  packet(tag: Buffer): void {
    if (this.refused) return
    if (this.ffmpeg !== undefined) {
      this.ffmpeg.stdin.write(tag)
      return
    }
    if (this.pending.length >= MAX_PENDING_PACKETS) {
      this.refuse("too much media before the key was checked")
      return
    }
    this.pending.push(tag)
  }

  closed(): void {
    this.ended = true
    this.ffmpeg?.stdin.end()
  }
}

/** Why a media packet cannot go into the segments, if it cannot. */
const unsupportedCodec = (packet: { codec_type: number; codec_id: number }): string | undefined => {
  if (packet.codec_type === VIDEO_TAG && packet.codec_id !== H264) {
    return `unsupported video codec (FLV codec id ${packet.codec_id}): push H.264`
  }
  if (packet.codec_type === AUDIO_TAG && packet.codec_id !== AAC) {
    return `unsupported audio codec (FLV sound format ${packet.codec_id}): push AAC`
  }
  return undefined
}

export class RtmpIngest {
  private readonly server: Server
  private readonly sockets = new Set<Socket>()
  private closing: Promise<void> | undefined

  private constructor(private readonly options: RtmpIngestOptions) {
    this.server = createServer((socket) => this.accept(socket))
  }

  static async listen(options: RtmpIngestOptions): Promise<RtmpIngest> {
    const ingest = new RtmpIngest(options)
    await new Promise<void>((resolve, reject) => {
      ingest.server.once("error", reject)
      ingest.server.listen(options.port, options.host, () => resolve())
    })
    return ingest
  }

  get port(): number {
    const address = this.server.address()
    return typeof address === "object" && address !== null ? address.port : this.options.port
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket)
    const rtmp = new Rtmp()
    const publish = new Publish(socket, this.options, (reason) => {
      rtmp.sendStatusMessage(rtmp.streamId, "error", "NetStream.Publish.BadName", reason)
      socket.end()
      setTimeout(() => socket.destroy(), 1_000).unref()
    })
    let path: { app: string; name: string } | undefined
    rtmp.onOutputCallback = (buffer: Buffer) => {
      if (!socket.destroyed && socket.writable) socket.write(buffer)
    }
    rtmp.onConnectCallback = (request: { app: string; name: string }) => {
      path = { app: request.app, name: request.name }
    }
    // `NetStream.Publish.Start` only once the publish is admitted (the parser would send it at once).
    rtmp.respondPublish = () => undefined
    // Nothing is played back from here.
    rtmp.onPlayCallback = () => socket.destroy()
    rtmp.onPushCallback = () => {
      if (path === undefined) return publish.refuse("no stream path")
      const asked = path
      this.options.admit({ ...asked, end: () => socket.destroy() }).then(
        async (admission) => {
          if ("refused" in admission) return publish.refuse(admission.refused)
          const dir = await mkdtemp(join(tmpdir(), "capture-rtmp-")).catch(async (error: unknown) => {
            const reason = `no room for its segments: ${error instanceof Error ? error.message : String(error)}`
            await admission.publisher.onEnd(new RtmpPublishRefused(reason))
            publish.refuse(reason)
            return undefined
          })
          if (dir === undefined) return
          Rtmp.prototype.respondPublish.call(rtmp)
          // A publisher gone while its key was checked still ends cleanly: ffmpeg gets what came.
          publish.admitted(admission.publisher, dir)
        },
        (error: unknown) => publish.refuse(error instanceof Error ? error.message : String(error)),
      )
    }
    rtmp.onPacketCallback = (packet: { codec_type: number; codec_id: number }) => {
      if (packet.codec_type !== AUDIO_TAG && packet.codec_type !== VIDEO_TAG) return
      const unsupported = unsupportedCodec(packet)
      if (unsupported !== undefined) return publish.refuse(unsupported)
      publish.packet(Flv.createMessage(packet))
    }
    socket.on("data", (data: Buffer) => {
      const error = rtmp.parserData(data)
      if (error != null) socket.destroy()
    })
    socket.on("error", () => socket.destroy())
    socket.on("close", () => {
      this.sockets.delete(socket)
      publish.closed()
    })
  }

  /** Closes the listener and every publish; again: the same promise. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const socket of this.sockets) socket.destroy()
      await new Promise<void>((resolve) => this.server.close(() => resolve()))
    })()
    return this.closing
  }
}
