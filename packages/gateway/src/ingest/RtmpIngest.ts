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
import { mkdtemp } from "node:fs/promises"
import { createServer, type Server, type Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import nmsLogger from "node-media-server/src/core/logger.js"
import Flv from "node-media-server/src/protocol/flv.js"
import Rtmp from "node-media-server/src/protocol/rtmp.js"
import {
  COPY,
  type PushAdmission,
  type PushPublisher,
  PushPublishRefused,
  SegmentCutter,
} from "./SegmentCutter.js"

// Its logger writes to stdout (a client's malformed AMF included); our own log says what matters.
nmsLogger.log = () => undefined

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
  }) => Promise<PushAdmission>
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

class Publish {
  private cutter: SegmentCutter | undefined
  private readonly pending: Array<Buffer> = []
  private refused = false
  private ended = false

  constructor(
    private readonly socket: Socket,
    private readonly options: RtmpIngestOptions,
    /** Tells the publisher why, in RTMP's own way, before the socket closes. */
    private readonly tellRefused: (reason: string) => void,
  ) {}

  admitted(publisher: PushPublisher, dir: string): void {
    const cutter = new SegmentCutter({
      ffmpegPath: this.options.ffmpegPath,
      input: ["-f", "flv", "-i", "pipe:0"],
      codecs: COPY,
      dir,
      seconds: this.options.segmentSeconds ?? 2,
      publisher,
      onExit: () => this.socket.destroy(),
      onFailure: () => this.socket.destroy(),
      log: this.options.log,
    })
    this.cutter = cutter
    const stdin = cutter.ffmpeg.stdin
    stdin.on("error", () => this.socket.destroy())
    stdin.write(Flv.createHeader(true, true))
    for (const tag of this.pending.splice(0)) stdin.write(tag)
    if (this.ended) stdin.end()
  }

  refuse(reason: string): void {
    if (this.refused) return
    this.refused = true
    this.pending.length = 0
    this.options.log?.(`rtmp publish refused: ${reason}`)
    this.cutter?.refuse(reason)
    this.tellRefused(reason)
  }

  packet(tag: Buffer): void {
    if (this.refused) return
    if (this.cutter !== undefined) {
      this.cutter.ffmpeg.stdin.write(tag)
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
    this.cutter?.ffmpeg.stdin.end()
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
          if ("refused" in admission) return publish.refuse(admission.refused.message)
          const dir = await mkdtemp(join(tmpdir(), "capture-rtmp-")).catch(async (error: unknown) => {
            const reason = `no room for its segments: ${error instanceof Error ? error.message : String(error)}`
            await admission.publisher.onEnd(new PushPublishRefused(reason))
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
