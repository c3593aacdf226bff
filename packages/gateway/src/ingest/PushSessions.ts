/**
 * Sessions fed by a pushed source (`source: "rtmp"` or `"whip"`): admits a publish to a session
 * (its stream key or bearer token checked by the protocol's side) and stores what it sends
 * through the recorder's own path (`storeSegment`), the pushed video on the session's video
 * channel and its audio on its audio channel.
 *
 * - A publish opens its session only while it is `starting` or `active`, and only for one
 *   publisher at a time on any gateway (`PublishLeases`); anything else is refused with the reason.
 * - Segment indexes and times continue from what the session holds, so a publisher that
 *   reconnects (to any gateway) resumes the same channels with no duplicate and no hole.
 * - A publish's last segment of each kind is held back when the publisher leaves: a reconnect
 *   within `graceMs` makes it an ordinary segment; otherwise it is stored `final` and the session
 *   stopped (reason `publisher_disconnected`), so it exports as usual. A session stopped by the
 *   API while publishing closes the publish; what ffmpeg still had is stored, the last final.
 * - A gateway that dies loses only its held-back segments (at most one per kind); its lease runs
 *   out after its TTL and the session's silence rule stops the session if nobody reconnects.
 */
import { createHash, randomUUID } from "node:crypto"
import {
  type CaptureError,
  type Channel,
  type ChannelInput,
  captureError,
  channelKind,
  newCommandId,
  type RtmpIngress,
  type RtmpSetup,
  type SessionId,
  type SessionStatus,
  typeOfKind,
} from "@capture/protocol"
import type { ActorHost } from "@capture/session-actor"
import { Effect, Result } from "effect"
import type { GatewayServicesShape, RtmpEndpoint } from "../GatewayContext.js"
import type { HeldLease, Lease, PublishLeases } from "./PublishLeases.js"
import {
  type PushAdmission,
  type PushMediaKind,
  type PushPublisher,
  PushPublishRefused,
  type PushSegment,
} from "./SegmentCutter.js"
import { MAX_SEGMENT_DURATION_MS, storeSegment } from "./StoreSegment.js"
import type { StreamKeys } from "./StreamKeys.js"

/** The stop reason of a session whose publisher left and did not come back within the grace period. */
export const PUBLISHER_DISCONNECTED = "publisher_disconnected"

/** The protocols a session can be pushed over. */
export type PushProtocol = "rtmp" | "whip"

export interface PushSessionsOptions {
  /** How long a session waits for its publisher to come back before it stops. */
  readonly graceMs: number
  /** How often a held lease is renewed (well within the lease bucket's TTL). */
  readonly renewMs: number
  readonly log: (message: string) => void
}

const RECORDING: ReadonlySet<string> = new Set(["starting", "active", "stopping"])
const KINDS: ReadonlyArray<PushMediaKind> = ["video", "audio"]

/** The channel each kind of pushed media goes to: the primary (else first) video channel, the first audio one. */
export const pushChannels = (
  channels: ReadonlyArray<Channel>,
  primary: string | null,
): Record<PushMediaKind, Channel | undefined> => ({
  video:
    channels.find((c) => c.type === "video" && c.channel_id === primary) ??
    channels.find((c) => c.type === "video"),
  audio: channels.find((c) => c.type === "audio"),
})

const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error))
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export class PushSessions {
  private readonly publishes = new Set<Publish>()
  private stopping = false

  constructor(
    private readonly services: GatewayServicesShape,
    private readonly leases: PublishLeases,
    private readonly options: PushSessionsOptions,
  ) {}

  /** The session's publisher over `protocol` (whose credentials the caller checked), or why not. */
  async admit(sessionId: string, protocol: PushProtocol, end: () => void): Promise<PushAdmission> {
    if (this.stopping) return { refused: captureError("unavailable", "the server is shutting down") }
    const loaded = await this.services.runtime.host.load(sessionId)
    const status = loaded.state.value
    if (status === "none") return { refused: captureError("session_not_found", `no session ${sessionId}`) }
    if (status !== "starting" && status !== "active") {
      return {
        refused: captureError("session_ended", `session ${sessionId} is ${status}: it takes no more media`, {
          current_status: status,
        }),
      }
    }
    const context = loaded.state.context
    const channels = pushChannels(context.channels, context.primary_video_channel_id)
    const fresh = await this.continuation(sessionId, channels)
    const holder = `pub-${randomUUID()}`
    const acquired = await this.leases.acquire(sessionId, holder, fresh)
    if ("taken" in acquired) {
      return {
        refused:
          acquired.taken === "ended"
            ? captureError("session_ended", `session ${sessionId} stopped after its publisher left`)
            : captureError("publisher_active", `another publisher is pushing to session ${sessionId}`),
      }
    }
    this.options.log(`${protocol} publish to session ${sessionId} admitted (${holder})`)
    const started = new Publish(
      this.services,
      this.leases,
      this.options,
      protocol,
      acquired.held,
      context.account_id,
      channels,
      end,
      () => this.stopping,
    )
    this.publishes.add(started)
    void started.settled.finally(() => this.publishes.delete(started))
    return { publisher: started }
  }

  /** Where a new publish continues: after the segments each channel holds. */
  private async continuation(
    sessionId: string,
    channels: Record<PushMediaKind, Channel | undefined>,
  ): Promise<Pick<Lease, "next" | "end_ms">> {
    const records = await this.services.media.list(sessionId)
    const next = { video: 0, audio: 0 }
    const end_ms = { video: 0, audio: 0 }
    for (const kind of KINDS) {
      for (const record of records) {
        if (record.channel_id !== channels[kind]?.channel_id) continue
        next[kind] = Math.max(next[kind], record.index + 1)
        end_ms[kind] = Math.max(end_ms[kind], record.start_ms + record.duration_ms)
      }
    }
    return { next, end_ms }
  }

  /** Refuses new publishes and waits for the ones in hand: held segments are stored (not final), leases left to expire or be taken over. */
  async stop(): Promise<void> {
    this.stopping = true
    await Promise.all([...this.publishes].map((publish) => publish.settled))
  }
}

/** One admitted publish, from its first segment to the end of its grace period. */
class Publish implements PushPublisher {
  private held: HeldLease
  private readonly base: Lease["next"]
  private readonly admittedAtMs = Date.now()
  private readonly heldBack = new Map<PushMediaKind, PushSegment>()
  private readonly renewTimer: NodeJS.Timeout
  private closing = false
  private settle: () => void = () => undefined
  /** Resolves once the publish has ended and its held segments are stored or dropped. */
  readonly settled = new Promise<void>((resolve) => {
    this.settle = resolve
  })

  constructor(
    private readonly services: GatewayServicesShape,
    private readonly leases: PublishLeases,
    private readonly options: PushSessionsOptions,
    private readonly protocol: PushProtocol,
    held: HeldLease,
    private readonly accountId: string,
    private readonly channels: Record<PushMediaKind, Channel | undefined>,
    private readonly end: () => void,
    private readonly shuttingDown: () => boolean,
  ) {
    this.held = held
    this.base = held.lease.next
    this.renewTimer = setInterval(() => void this.renew(), options.renewMs)
  }

  private get sessionId(): string {
    return this.held.sessionId
  }

  private get host(): ActorHost {
    return this.services.runtime.host
  }

  private log(message: string): void {
    this.options.log(`${this.protocol} push to session ${this.sessionId}: ${message}`)
  }

  /** Closes the publish from our side (ffmpeg still hands over what it has). */
  private close(why: string): void {
    if (this.closing) return
    this.closing = true
    this.log(`closing the publish: ${why}`)
    this.end()
  }

  private async status(): Promise<SessionStatus | "none"> {
    return (await this.host.load(this.sessionId)).state.value
  }

  /** Keeps the lease; a session stopped by the API, or a lease lost, closes the publish. */
  private async renew(): Promise<void> {
    try {
      const renewed = await this.leases.renew(this.held)
      if (renewed === undefined) return this.close("its lease was lost")
      this.held = renewed
      const status = await this.status()
      if (status !== "starting" && status !== "active") this.close(`the session is ${status}`)
    } catch (error) {
      this.log(`renewing its lease: ${describe(error)}`)
    }
  }

  readonly onSegment = async (segment: PushSegment): Promise<void> => {
    if (this.channels[segment.kind] === undefined) return
    const index = this.base[segment.kind] + segment.index
    this.held = {
      ...this.held,
      lease: { ...this.held.lease, next: { ...this.held.lease.next, [segment.kind]: index + 1 } },
    }
    // The last of this publish waits: the publisher may come back and go on after it.
    if (segment.final) {
      this.heldBack.set(segment.kind, segment)
      return
    }
    await this.store(segment, false)
  }

  /** Stores a segment on its kind's channel; a refusal (quota, a stopped session) closes the publish. */
  private async store(segment: PushSegment, final: boolean): Promise<void> {
    const channel = this.channels[segment.kind]
    if (channel === undefined) return
    const index = this.base[segment.kind] + segment.index
    const endMs = this.held.lease.end_ms[segment.kind]
    const startMs = Math.max(this.admittedAtMs + segment.offsetMs, endMs)
    this.held = {
      ...this.held,
      lease: {
        ...this.held.lease,
        end_ms: { ...this.held.lease.end_ms, [segment.kind]: startMs + segment.durationMs },
      },
    }
    const refusal = (message: string) => {
      this.log(`segment ${channel.channel_id}/${index} refused: ${message}`)
      this.close(message)
    }
    if (index > this.services.config.maxSegmentIndex) {
      return refusal(`index ${index} is past the last one allowed (${this.services.config.maxSegmentIndex})`)
    }
    if (segment.durationMs > MAX_SEGMENT_DURATION_MS) {
      return refusal(
        `${segment.durationMs} ms is longer than a segment may be (${MAX_SEGMENT_DURATION_MS} ms): send a keyframe at least every few seconds`,
      )
    }
    const status = await this.status()
    if (!RECORDING.has(status)) return refusal(`the session is ${status}`)
    if (status === "stopping") this.close("the session is stopping")
    const stored = await Effect.runPromise(
      storeSegment(this.services, this.services.media, {
        accountId: this.accountId,
        sessionId: this.sessionId,
        channelId: channel.channel_id,
        status,
        index,
        startMs,
        durationMs: segment.durationMs,
        sha256: createHash("sha256").update(segment.bytes).digest("hex"),
        final,
        length: segment.bytes.length,
        body: (async function* () {
          yield segment.bytes
        })(),
      }).pipe(Effect.result),
    )
    if (Result.isFailure(stored)) refusal(stored.failure.error.message)
  }

  private async storeHeld(final: boolean): Promise<void> {
    for (const kind of KINDS) {
      const segment = this.heldBack.get(kind)
      if (segment !== undefined) await this.store(segment, final)
    }
    this.heldBack.clear()
  }

  readonly onEnd = async (error?: Error): Promise<void> => {
    clearInterval(this.renewTimer)
    try {
      if (error !== undefined) this.log(`the publish ended: ${error.message}`)
      else this.log("the publisher left")
      // Refused (its codecs): the publisher may try again right away, and nothing of it is kept.
      if (error instanceof PushPublishRefused) {
        this.heldBack.clear()
        await this.leases.release(this.held)
      } else await this.afterEnd()
    } catch (failure) {
      this.log(`after the publish: ${describe(failure)}`)
    } finally {
      this.settle()
    }
  }

  private async afterEnd(): Promise<void> {
    const status = await this.status()
    if (status === "stopping") {
      await this.storeHeld(true)
      return this.leases.release(this.held)
    }
    if (status !== "starting" && status !== "active") {
      this.heldBack.clear()
      return this.leases.release(this.held)
    }
    const inGrace = await this.leases.renew(this.held, { ...this.held.lease, state: "grace" })
    if (inGrace === undefined) return this.storeHeld(false)
    this.held = inGrace
    const deadline = Date.now() + this.options.graceMs
    while (Date.now() < deadline && !this.shuttingDown()) {
      await sleep(Math.min(this.options.renewMs, Math.max(0, deadline - Date.now())))
      const current = await this.leases.read(this.sessionId)
      // A reconnect took the lease (on any gateway): these are ordinary segments before its own.
      if (current === undefined || current.revision !== this.held.revision) return this.storeHeld(false)
      const now = await this.status()
      if (now === "stopping") {
        await this.storeHeld(true)
        return this.leases.release(this.held)
      }
      if (now !== "starting" && now !== "active") return this.leases.release(this.held)
      const renewed = await this.leases.renew(this.held)
      if (renewed === undefined) return this.storeHeld(false)
      this.held = renewed
    }
    // Shutting down: another gateway may still take the lease over; the segments go in as they are.
    if (this.shuttingDown()) return this.storeHeld(false)
    const ended = await this.leases.renew(this.held, { ...this.held.lease, state: "ended" })
    if (ended === undefined) return this.storeHeld(false)
    this.held = ended
    this.log(`the publisher did not come back within ${this.options.graceMs} ms: stopping the session`)
    await this.storeHeld(true)
    const stopped = await this.host.execute({
      type: "StopSession",
      command_id: newCommandId(),
      session_id: this.sessionId as SessionId,
      reason: PUBLISHER_DISCONNECTED,
    })
    if (Result.isFailure(stopped) && stopped.failure.error_code !== "invalid_transition") {
      this.log(`stopping the session: ${stopped.failure.message}`)
    }
  }
}

/** A pushed session carries one video channel and one audio channel at most (what RTMP and WHIP carry). */
export const checkPushChannels = (channels: ReadonlyArray<ChannelInput>): CaptureError | undefined => {
  const typeOf = (c: ChannelInput) => c.type ?? typeOfKind(channelKind(c.channel_id))
  const video = channels.filter((c) => typeOf(c) === "video").length
  const audio = channels.filter((c) => typeOf(c) === "audio").length
  return video > 1 || audio > 1
    ? captureError(
        "invalid_field",
        "a pushed session has at most one video channel and one audio channel: the pushed video and audio",
        { field: "channels" },
      )
    : undefined
}

/** RTMP's admission (`RtmpIngest`'s `admit`): the application and the stream key checked first. */
export const rtmpAdmission =
  (sessions: () => PushSessions | undefined, keys: StreamKeys, app: string) =>
  async (publish: {
    readonly app: string
    readonly name: string
    readonly end: () => void
  }): Promise<PushAdmission> => {
    const pushSessions = sessions()
    if (pushSessions === undefined) return { refused: captureError("unavailable", "the server is starting") }
    if (publish.app !== app) {
      return {
        refused: captureError(
          "not_found",
          `unknown application "${publish.app}": publish to …/${app}/<stream key>`,
        ),
      }
    }
    const sessionId = keys.sessionOf(publish.name)
    if (sessionId === undefined) return { refused: captureError("unauthorized", "unknown stream key") }
    const admission = await pushSessions.admit(sessionId, "rtmp", publish.end)
    // An unknown session reads as an unknown key: a key names its session.
    return "refused" in admission && admission.refused.error_code === "session_not_found"
      ? { refused: captureError("unauthorized", "unknown stream key") }
      : admission
  }

/** The `rtmp` and `rtmp_setup` a pushed session's start answers with. */
export const rtmpAnswer = (
  rtmp: RtmpEndpoint,
  sessionId: string,
): { readonly rtmp: RtmpIngress; readonly rtmp_setup: RtmpSetup } => {
  const streamKey = rtmp.keys.keyFor(sessionId)
  return {
    rtmp: { ingress_id: sessionId, url: `${rtmp.publicUrl}/${streamKey}`, stream_key: streamKey },
    rtmp_setup: {
      server: rtmp.publicUrl,
      stream_key: streamKey,
      instructions: {
        step1: "In OBS Studio open Settings → Stream and choose Service: Custom…",
        step2: `Paste Server: ${rtmp.publicUrl} and Stream Key: ${streamKey}, then OK.`,
        step3: `Start Streaming (H.264 video, AAC audio; a keyframe every 2 s). The session records until you stop streaming (after ${Math.round(rtmp.graceMs / 1000)} s without a reconnect) or until it is stopped.`,
      },
    },
  }
}
