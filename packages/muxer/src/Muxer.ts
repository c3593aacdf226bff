/**
 * The muxer service: two JetStream durable consumers whose work is shared by every instance.
 *
 * - `<prefix>-muxer-media` on the media records stream: as segments arrive, each stored
 *   channel's segment is remuxed to a piece and audio windows whose inputs are settled are
 *   mixed, so when the session stops only the tail is left.
 * - `<prefix>-muxer` on the session event stream: on `SessionStopped` it runs the session's
 *   automatic export (`automaticExport`: nothing when aborted or nothing is stored); on
 *   `ExportRequested` the requested one. The result goes back through the session actor as
 *   `CompleteExport` (with the raw assets' ids) / `FailExport`.
 *
 * Crash safety: an export's video id is claimed once per (session, channel, attempt) and reused
 * by whoever retries; pieces are named by their inputs; raw asset ids and command ids are derived
 * from the video id, and the actor ignores a second completion. So a redelivered or re-run export
 * produces the same outputs (asset ids included) and `exported` appears once.
 */

import { type FfmpegTools, resolveFfmpegTools } from "@capture/binaries"
import type { MediaStore } from "@capture/media"
import { decodeSegmentRecord } from "@capture/media"
import {
  assetIdsOf,
  type ChannelId,
  type CommandId,
  decodeUnknown,
  newVideoId,
  SessionEvent,
  type SessionId,
  type VideoId,
} from "@capture/protocol"
import { automaticExport, ensureDurableConsumer, type SessionRuntime } from "@capture/session-actor"
import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import { ExportStore } from "./ExportStore.js"
import { type AssembleResult, Pipeline, type SessionChannels } from "./internal/pipeline.js"
import { Semaphore } from "./internal/semaphore.js"
import { MuxerStore } from "./internal/store.js"

export interface MuxerOptions {
  readonly mediaStore: MediaStore
  /** Base of public URLs: `stream_url` = `${publicUrl}/media/{video_id}/index.m3u8`, `player_url` = `${publicUrl}/player/{video_id}`. */
  readonly publicUrl: string
  readonly log?: (message: string) => void
  /** Same prefix as the session topology: `capture` → bucket `capture_exports`, consumers `capture-muxer…`. */
  readonly prefix?: string
  readonly replicas?: number
  /** How long a delivered message may go unacknowledged before another instance gets it (kept alive while working). */
  readonly ackWaitMs?: number
  /** At export time, how long to wait for stored channels' final segments to arrive. */
  readonly finalWaitMs?: number
  /** ffmpeg processes at once (default: 2). */
  readonly concurrency?: number
  /** Work on segments as they arrive (default true); false leaves everything to the export. */
  readonly incremental?: boolean
  /** Resolved binaries (default: `resolveFfmpegTools()`, which throws if one is missing). */
  readonly tools?: FfmpegTools
}

const decodeEvent = decodeUnknown(SessionEvent)
/** Deliveries of one export trigger before a persistent error fails the export. */
const MAX_EXPORT_DELIVERIES = 5

/** A running muxer. */
export class Muxer {
  private readonly loops: Array<{ messages: ConsumerMessages; done: Promise<void> }> = []
  private readonly handlers = new Set<Promise<void>>()
  /** Exports this instance completed or failed (for tests and health). */
  readonly completed: Array<{ readonly videoId: string; readonly ok: boolean }> = []

  private constructor(
    private readonly nc: NatsConnection,
    private readonly runtime: SessionRuntime,
    private readonly options: MuxerOptions,
    private readonly pipeline: Pipeline,
    private readonly store: MuxerStore,
    readonly exportStore: ExportStore,
    private readonly log: (message: string) => void,
  ) {}

  /** Resolves ffmpeg, opens the exports bucket and starts both consumers. */
  static async start(nc: NatsConnection, runtime: SessionRuntime, options: MuxerOptions): Promise<Muxer> {
    const tools = options.tools ?? resolveFfmpegTools()
    const log = options.log ?? (() => {})
    const prefix = options.prefix ?? runtime.topology.options.prefix
    const store = await MuxerStore.open(nc, {
      prefix,
      replicas: options.replicas ?? runtime.topology.options.replicas,
    })
    const pipeline = new Pipeline(tools, options.mediaStore, store, options.concurrency ?? 2, log)
    const muxer = new Muxer(
      nc,
      runtime,
      { ...options, prefix },
      pipeline,
      store,
      ExportStore.fromStore(store),
      log,
    )
    await muxer.consume(
      runtime.topology.eventStream,
      `${prefix}-muxer`,
      runtime.topology.eventSubjects,
      2,
      (m) => muxer.onEvent(m),
    )
    if (options.incremental !== false) {
      const media = options.mediaStore.topology
      await muxer.consume(
        media.stream,
        `${prefix}-muxer-media`,
        media.subjects,
        options.concurrency ?? 2,
        (m) => muxer.onMediaRecord(m),
      )
    }
    log(`muxer: started (ffmpeg ${tools.ffmpeg}, bucket ${store.bucket})`)
    return muxer
  }

  /** Stops consuming and waits for work in progress (unacknowledged work is redelivered elsewhere). */
  async stop(): Promise<void> {
    for (const loop of this.loops) await loop.messages.close()
    await Promise.all(this.loops.map((l) => l.done))
    await Promise.allSettled([...this.handlers])
  }

  private get ackWaitMs(): number {
    return this.options.ackWaitMs ?? 30_000
  }

  private async consume(
    stream: string,
    durable: string,
    subjects: string,
    parallel: number,
    handle: (message: JsMsg) => Promise<void>,
  ): Promise<void> {
    const jsm = await jetstreamManager(this.nc)
    await ensureDurableConsumer(jsm, stream, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: subjects,
      ack_wait: this.ackWaitMs * 1_000_000,
      max_ack_pending: 1_000,
      max_deliver: -1,
    })
    const consumer = await jetstream(this.nc).consumers.get(stream, durable)
    const messages = await consumer.consume({ max_messages: Math.max(4, parallel * 2) })
    const slots = new Semaphore(parallel)
    const done = (async () => {
      for await (const message of messages) {
        // Wait for a free slot before taking the next message, so the rest stay available to others.
        await new Promise<void>((started) => {
          const handler = slots.run(async () => {
            started()
            await this.withHeartbeat(message, () => handle(message))
          })
          this.handlers.add(handler)
          void handler.finally(() => this.handlers.delete(handler))
        })
      }
    })()
    this.loops.push({ messages, done })
  }

  /** Keeps a message from being redelivered while it is being worked on; acks or retries after. */
  private async withHeartbeat(message: JsMsg, work: () => Promise<void>): Promise<void> {
    const timer = setInterval(() => message.working(), Math.max(500, this.ackWaitMs / 3))
    try {
      await work()
      message.ack()
    } catch (error) {
      this.log(`muxer: ${message.subject} #${message.seq} failed (${String(error)}); will retry`)
      message.nak(2_000)
    } finally {
      clearInterval(timer)
    }
  }

  private async sessionChannels(
    sessionId: string,
  ): Promise<{ value: string; channels: SessionChannels } | undefined> {
    const { state } = await this.runtime.host.load(sessionId)
    if (state.value === "none") return undefined
    return {
      value: state.value,
      channels: { channels: state.context.channels, primary: state.context.primary_video_channel_id },
    }
  }

  private async onMediaRecord(message: JsMsg): Promise<void> {
    let record: ReturnType<typeof decodeSegmentRecord>
    try {
      record = decodeSegmentRecord(message.json(), message.seq)
    } catch (error) {
      this.log(`muxer: ${String(error)}; skipped`)
      return
    }
    const session = await this.sessionChannels(record.session_id)
    // Only live sessions: after the end, the export makes whatever is missing itself.
    if (session === undefined || !["starting", "active", "stopping"].includes(session.value)) return
    await this.pipeline.onRecord(record, session.channels)
  }

  private async onEvent(message: JsMsg): Promise<void> {
    const decoded = (() => {
      try {
        return decodeEvent(message.json())
      } catch (error) {
        return Result.fail(error)
      }
    })()
    if (Result.isFailure(decoded)) return
    const event = decoded.success
    if (event.type === "SessionStopped") {
      if (event.data.reason === "aborted") return
      const session = await this.sessionChannels(event.session_id)
      if (session === undefined) return
      await this.dropUnstored(event.session_id, session.channels)
      const { channels, primary } = session.channels
      const target = automaticExport(channels, primary as ChannelId | null, event.data.reason)
      if (target === undefined) return
      await this.export(event.session_id, target, event.sequence, message)
    } else if (event.type === "ExportRequested") {
      await this.export(event.session_id, event.data.video_channel_id, event.sequence, message)
    }
  }

  /** Segments of `store: false` channels were only for live use: drop them once the session stopped. */
  private async dropUnstored(sessionId: string, session: SessionChannels): Promise<void> {
    for (const channel of session.channels.filter((c) => !c.store)) {
      try {
        const dropped = await this.options.mediaStore.deleteChannel(sessionId, channel.channel_id)
        if (dropped > 0)
          this.log(`muxer: dropped ${dropped} segments of ${sessionId}/${channel.channel_id} (store: false)`)
      } catch (error) {
        this.log(`muxer: could not drop ${sessionId}/${channel.channel_id}: ${String(error)}`)
      }
    }
  }

  private async export(
    sessionId: string,
    videoChannelId: string | null,
    triggerSequence: number,
    message: JsMsg,
  ): Promise<void> {
    const { state } = await this.runtime.host.load(sessionId)
    if (state.value !== "stopped" && state.value !== "exported") return
    const current = state.context.exports.find((e) => e.video_channel_id === videoChannelId)
    if (current?.export_status === "exported") return
    // Attempt n = the export after n failures of this channel; a redelivered trigger of an
    // attempt that has since failed is stale.
    let attempt = 0
    let failures = 0
    for await (const { event } of this.runtime.events.read(sessionId)) {
      if (event.type === "ExportFailed" && event.data.video_channel_id === videoChannelId) {
        failures++
        if (event.sequence < triggerSequence) attempt++
      }
    }
    if (failures > attempt) return
    const job = await this.store.claimJob(sessionId, `${videoChannelId ?? "-"}#${attempt}`, {
      video_id: newVideoId(),
      session_id: sessionId,
      video_channel_id: videoChannelId,
      attempt,
      created_at: new Date().toISOString(),
    })
    this.log(`muxer: export ${job.video_id} of ${sessionId} (${videoChannelId ?? "audio only"}) started`)
    const startedAt = Date.now()
    await this.waitForFinalSegments(
      sessionId,
      state.context.channels.filter((c) => c.store).map((c) => c.channel_id),
    )
    const channels = { channels: state.context.channels, primary: state.context.primary_video_channel_id }
    let result: AssembleResult
    try {
      result = await this.pipeline.assemble(sessionId, channels, videoChannelId, job)
    } catch (error) {
      // Retried on redelivery; an export that keeps failing is reported rather than retried forever.
      if (message.info.deliveryCount < MAX_EXPORT_DELIVERIES) throw error
      result = {
        ok: false,
        code: "export_error",
        message: error instanceof Error ? error.message : String(error),
      }
    }
    const videoId = job.video_id as VideoId
    const outcome = result.ok
      ? await this.runtime.host.execute({
          type: "CompleteExport",
          command_id: `mux-done-${videoId}` as CommandId,
          session_id: sessionId as SessionId,
          video_channel_id: videoChannelId as ChannelId | null,
          video_id: videoId,
          stream_url: `${this.options.publicUrl}/media/${videoId}/index.m3u8`,
          player_url: `${this.options.publicUrl}/player/${videoId}`,
          asset_ids: assetIdsOf(result.manifest.metadata),
        })
      : await this.runtime.host.execute({
          type: "FailExport",
          command_id: `mux-fail-${videoId}` as CommandId,
          session_id: sessionId as SessionId,
          video_channel_id: videoChannelId as ChannelId | null,
          error: { code: result.code, message: result.message },
        })
    if (Result.isFailure(outcome)) {
      this.log(
        `muxer: export ${videoId} of ${sessionId}: the session refused the result: ${outcome.failure.message}`,
      )
    } else {
      this.log(
        `muxer: export ${videoId} of ${sessionId} ${
          result.ok ? `completed (${result.piecesMade} pieces made now)` : `failed (${result.message})`
        } in ${Date.now() - startedAt} ms`,
      )
    }
    this.completed.push({ videoId, ok: result.ok })
  }

  /** Waits (bounded) until every stored channel that sent segments has sent its final one. */
  private async waitForFinalSegments(sessionId: string, stored: ReadonlyArray<string>): Promise<void> {
    const deadline = Date.now() + (this.options.finalWaitMs ?? 2_000)
    for (;;) {
      const records = await this.options.mediaStore.list(sessionId)
      const open = stored.filter(
        (c) => records.some((r) => r.channel_id === c) && !records.some((r) => r.channel_id === c && r.final),
      )
      if (open.length === 0 || Date.now() >= deadline) return
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }
}
