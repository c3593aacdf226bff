/**
 * WHIP publishes (RFC 9725) on the media side: werift (WebRTC in TypeScript, no native code)
 * answers a publisher's SDP offer, receives its SRTP, and hands the RTP packets over UDP on
 * 127.0.0.1 to one ffmpeg per publish, which reads them by an SDP of its own and cuts them into
 * the recorder's MPEG-TS segments (`SegmentCutter`): H.264 copied as it is (a keyframe asked for
 * every segment length by PLI), VP8 encoded to H.264, Opus to AAC.
 *
 * ICE: host candidates on the configured addresses only, no STUN or TURN server is asked; the
 * answer carries every candidate (no trickle). The publish ends when the publisher's connection
 * fails or closes, no media came for `mediaTimeoutMs`, `DELETE` on its resource, or the session
 * side ends it; ffmpeg then writes out what it has, the last segments `final`.
 */
import { randomUUID } from "node:crypto"
import { createSocket, type Socket } from "node:dgram"
import { mkdtemp } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type CaptureError, captureError } from "@capture/protocol"
import { RTCPeerConnection, type RTCRtpTransceiver, type RtpPacket, useH264, useOPUS, useVP8 } from "werift"
import { type PushAdmission, type PushMediaKind, PushPublishRefused, SegmentCutter } from "./SegmentCutter.js"

export interface WhipIngestOptions {
  readonly ffmpegPath: string
  /** Local addresses ICE host candidates are gathered on and offered (loopback included when named). */
  readonly iceAddresses: ReadonlyArray<string>
  /** UDP ports ICE may take (inclusive); default any. */
  readonly icePortRange?: readonly [number, number] | undefined
  readonly segmentSeconds?: number | undefined
  /** A publish with no media for this long has ended (ms; default 10 s). */
  readonly mediaTimeoutMs?: number | undefined
  readonly log: (message: string) => void
}

/** The video codecs a publisher may send, best first: H.264 is copied, VP8 encoded to H.264. */
type VideoCodec = "H264" | "VP8"

interface OfferedMedia {
  readonly video: VideoCodec | undefined
  readonly audio: boolean
}

/** What a WHIP offer carries that we can take, or why nothing of it fits. */
export const offeredMedia = (sdp: string): OfferedMedia | CaptureError => {
  const sections = sdp.split(/\r?\nm=/).slice(1)
  if (sections.length === 0) {
    return captureError("invalid_request", "the body is not an SDP offer (no m= line)", { field: "body" })
  }
  const codecsOf = (kind: PushMediaKind) =>
    sections
      .filter((section) => section.startsWith(`${kind} `))
      .flatMap((section) =>
        [...section.matchAll(/^a=rtpmap:\d+ ([^/\s]+)\//gm)].map((m) => m[1]?.toUpperCase()),
      )
  const video = codecsOf("video")
  const audio = codecsOf("audio")
  const offered: OfferedMedia = {
    video: video.includes("H264") ? "H264" : video.includes("VP8") ? "VP8" : undefined,
    audio: audio.includes("OPUS"),
  }
  const refusals = [
    video.length > 0 && offered.video === undefined
      ? `video (${video.join(", ")}): send H.264 or VP8`
      : undefined,
    audio.length > 0 && !offered.audio ? `audio (${audio.join(", ")}): send Opus` : undefined,
  ].filter((r) => r !== undefined)
  if (refusals.length > 0 || (offered.video === undefined && !offered.audio)) {
    return captureError(
      "unsupported_codec",
      `no codec the recording can carry in ${refusals.length > 0 ? refusals.join("; ") : "the offer"}`,
      { field: "body" },
    )
  }
  return offered
}

/** Two free UDP ports on 127.0.0.1, RTP's and RTCP's (the next one), for ffmpeg to take. */
const freePortPair = async (): Promise<number> => {
  for (let attempt = 0; attempt < 20; attempt++) {
    const sockets: Array<Socket> = []
    const bind = (port: number) =>
      new Promise<number>((resolve, reject) => {
        const socket = createSocket("udp4")
        sockets.push(socket)
        socket.once("error", reject)
        socket.bind(port, "127.0.0.1", () => resolve(socket.address().port))
      })
    try {
      const port = await bind(0)
      await bind(port + 1)
      return port
    } catch {
      // The next one was taken: try another pair.
    } finally {
      for (const socket of sockets) socket.close()
    }
  }
  throw new Error("no free UDP port pair on 127.0.0.1")
}

const RTP_PAYLOAD = { video: 96, audio: 111 } as const

/** The SDP ffmpeg reads the forwarded RTP by. */
const ffmpegSdp = (ports: Partial<Record<PushMediaKind, number>>, video: VideoCodec | undefined): string => {
  const lines = ["v=0", "o=- 0 0 IN IP4 127.0.0.1", "s=whip", "c=IN IP4 127.0.0.1", "t=0 0"]
  if (ports.video !== undefined && video !== undefined) {
    lines.push(
      `m=video ${ports.video} RTP/AVP ${RTP_PAYLOAD.video}`,
      `a=rtpmap:${RTP_PAYLOAD.video} ${video}/90000`,
    )
    if (video === "H264") lines.push(`a=fmtp:${RTP_PAYLOAD.video} packetization-mode=1`)
  }
  if (ports.audio !== undefined) {
    lines.push(
      `m=audio ${ports.audio} RTP/AVP ${RTP_PAYLOAD.audio}`,
      `a=rtpmap:${RTP_PAYLOAD.audio} opus/48000/2`,
    )
  }
  return `${lines.join("\n")}\n`
}

/** How long the first packets wait for the other kind, so both start at the same instant. */
const START_GATE_MS = 2_000

/** One WHIP publish: its peer connection, the RTP relay to ffmpeg, and ffmpeg. */
class WhipPublish {
  readonly id = randomUUID()
  private readonly udp = createSocket("udp4")
  private cutter: SegmentCutter | undefined
  private ended = false
  private lastMediaAt = Date.now()
  private readonly timers: Array<NodeJS.Timeout> = []
  /** Kinds whose first packet came; forwarding starts once every offered kind's did (or the gate timed out). */
  private readonly arrived = new Set<PushMediaKind>()
  private gateOpen = false

  constructor(
    readonly sessionId: string,
    readonly pc: RTCPeerConnection,
    private readonly offered: OfferedMedia,
    private readonly ports: Partial<Record<PushMediaKind, number>>,
    private readonly options: WhipIngestOptions,
    private readonly onClosed: () => void,
  ) {
    this.udp.on("error", () => undefined)
  }

  start(cutter: SegmentCutter): void {
    this.cutter = cutter
    const seconds = this.options.segmentSeconds ?? 2
    const timeoutMs = this.options.mediaTimeoutMs ?? 10_000
    this.timers.push(
      setInterval(
        () => {
          if (Date.now() - this.lastMediaAt > timeoutMs) this.end(`no media for ${timeoutMs} ms`)
        },
        Math.min(1_000, timeoutMs),
      ),
    )
    this.pc.connectionStateChange.subscribe((state) => {
      if (state === "failed" || state === "closed") this.end(`the connection ${state}`)
    })
    this.pc.onTransceiverAdded.subscribe((transceiver) => this.relay(transceiver, seconds))
    for (const transceiver of this.pc.getTransceivers()) this.relay(transceiver, seconds)
  }

  private readonly relayed = new Set<RTCRtpTransceiver>()

  /** Forwards the transceiver's RTP to ffmpeg's port for its kind, asking for a keyframe every segment. */
  private relay(transceiver: RTCRtpTransceiver, seconds: number): void {
    if (this.relayed.has(transceiver)) return
    this.relayed.add(transceiver)
    transceiver.onTrack.subscribe((track) => {
      const kind: PushMediaKind = track.kind === "video" ? "video" : "audio"
      const port = this.ports[kind]
      if (port === undefined) return
      if (kind === "video") {
        this.timers.push(
          setInterval(() => {
            if (track.ssrc !== undefined)
              void transceiver.receiver.sendRtcpPLI(track.ssrc).catch(() => undefined)
          }, seconds * 1000),
        )
      }
      track.onReceiveRtp.subscribe((rtp: RtpPacket) => {
        if (this.ended) return
        this.lastMediaAt = Date.now()
        if (!this.gateOpen && !this.openGate(kind)) return
        rtp.header.payloadType = RTP_PAYLOAD[kind]
        rtp.header.extension = false
        rtp.header.extensions = []
        this.udp.send(rtp.serialize(), port, "127.0.0.1")
      })
    })
  }

  /**
   * ffmpeg starts each stream's clock at its first packet (no RTCP is relayed): both kinds start
   * at once, when the last offered one first arrives, so they stay in step.
   */
  private openGate(kind: PushMediaKind): boolean {
    if (this.arrived.size === 0) {
      this.timers.push(
        setTimeout(() => {
          this.gateOpen = true
        }, START_GATE_MS),
      )
    }
    this.arrived.add(kind)
    const expected = (this.offered.video === undefined ? 0 : 1) + (this.offered.audio ? 1 : 0)
    if (this.arrived.size >= expected) this.gateOpen = true
    // Said once: a publish whose media never reaches ffmpeg is told apart from one ffmpeg cannot read.
    if (this.gateOpen)
      this.options.log(`whip publish ${this.id}: media flowing (${[...this.arrived].join(", ")})`)
    return this.gateOpen
  }

  /** Ends the publish: the connection closed, ffmpeg asked to write out what it has. */
  end(why: string): void {
    if (this.ended) return
    this.ended = true
    this.options.log(`whip publish ${this.id} to session ${this.sessionId} ends: ${why}`)
    for (const timer of this.timers) clearInterval(timer)
    void this.pc.close().catch(() => undefined)
    this.cutter?.stop()
  }

  /** ffmpeg has exited. */
  exited(): void {
    this.end("ffmpeg exited")
    this.udp.close()
    this.onClosed()
  }
}

export class WhipIngest {
  private readonly publishes = new Map<string, WhipPublish>()

  constructor(private readonly options: WhipIngestOptions) {}

  /**
   * Answers `offer` for the publisher `admit` gives (asked only once the offer is known to fit):
   * the resource id and the SDP answer, or why not.
   */
  async answer(
    sessionId: string,
    offer: string,
    admit: (end: () => void) => Promise<PushAdmission>,
  ): Promise<{ readonly resourceId: string; readonly answer: string } | { readonly refused: CaptureError }> {
    const offered = offeredMedia(offer)
    if (!("audio" in offered)) return { refused: offered }
    const pc = new RTCPeerConnection({
      iceServers: [],
      iceUseIpv6: this.options.iceAddresses.some((address) => address.includes(":")),
      iceAdditionalHostAddresses: [...this.options.iceAddresses],
      iceFilterCandidatePair: (pair) => this.options.iceAddresses.includes(pair.localCandidate.host),
      ...(this.options.icePortRange === undefined ? {} : { icePortRange: [...this.options.icePortRange] }),
      codecs: {
        video: offered.video === "H264" ? [useH264()] : offered.video === "VP8" ? [useVP8()] : [],
        audio: offered.audio ? [useOPUS()] : [],
      },
    })
    const ports: Partial<Record<PushMediaKind, number>> = {
      ...(offered.video === undefined ? {} : { video: await freePortPair() }),
      ...(offered.audio ? { audio: await freePortPair() } : {}),
    }
    let publish: WhipPublish | undefined
    const admission = await admit(() => publish?.end("the session side closed it"))
    if ("refused" in admission) {
      await pc.close()
      return admission
    }
    publish = new WhipPublish(sessionId, pc, offered, ports, this.options, () => {
      this.publishes.delete(resourceId)
    })
    const resourceId = publish.id
    try {
      const seconds = this.options.segmentSeconds ?? 2
      const dir = await mkdtemp(join(tmpdir(), "capture-whip-"))
      const started = publish
      const cutter = new SegmentCutter({
        ffmpegPath: this.options.ffmpegPath,
        input: [
          ...["-nostdin", "-protocol_whitelist", "file,pipe,udp,rtp", "-buffer_size", "4194304"],
          ...["-f", "sdp", "-i", "pipe:0"],
        ],
        codecs: {
          video:
            offered.video === "VP8"
              ? [
                  "-c",
                  "libx264",
                  "-preset",
                  "veryfast",
                  "-force_key_frames",
                  `expr:gte(t,n_forced*${seconds})`,
                ]
              : ["-c", "copy"],
          audio: ["-c", "aac", "-b:a", "128k"],
        },
        dir,
        seconds,
        publisher: admission.publisher,
        onExit: () => started.exited(),
        onFailure: () => started.end("a segment could not be handed over"),
        log: this.options.log,
      })
      cutter.ffmpeg.stdin.on("error", () => undefined)
      cutter.ffmpeg.stdin.end(ffmpegSdp(ports, offered.video))
      publish.start(cutter)
      this.publishes.set(resourceId, publish)
      await pc.setRemoteDescription({ type: "offer", sdp: offer })
      await pc.setLocalDescription(await pc.createAnswer())
      await gathered(pc)
      const answer = pc.localDescription?.sdp
      if (answer === undefined) throw new Error("no local description")
      return { resourceId, answer: onlyCandidatesOn(answer, this.options.iceAddresses) }
    } catch (error) {
      const reason = `the offer could not be answered: ${error instanceof Error ? error.message : String(error)}`
      this.options.log(`whip publish to session ${sessionId} refused: ${reason}`)
      if (this.publishes.has(resourceId)) publish.end(reason)
      else {
        await pc.close().catch(() => undefined)
        await admission.publisher.onEnd(new PushPublishRefused(reason))
      }
      return { refused: captureError("invalid_request", reason, { field: "body" }) }
    }
  }

  /** The publish at `resourceId` of `sessionId`, if this process holds it. */
  has(sessionId: string, resourceId: string): boolean {
    return this.publishes.get(resourceId)?.sessionId === sessionId
  }

  /** Ends the publish at `resourceId` (`DELETE` on it). */
  end(resourceId: string): void {
    this.publishes.get(resourceId)?.end("the publisher deleted its resource")
  }

  async close(): Promise<void> {
    for (const publish of this.publishes.values()) publish.end("the server is shutting down")
  }
}

const gathered = (pc: RTCPeerConnection): Promise<void> =>
  new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve()
    const { unSubscribe } = pc.iceGatheringStateChange.subscribe((state) => {
      if (state !== "complete") return
      unSubscribe()
      resolve()
    })
  })

/** The answer with host candidates on `addresses` only (werift also gathers on the other interfaces). */
const onlyCandidatesOn = (sdp: string, addresses: ReadonlyArray<string>): string =>
  sdp
    .split("\r\n")
    .filter((line) => !line.startsWith("a=candidate:") || addresses.includes(line.split(" ")[4] ?? ""))
    .join("\r\n")
