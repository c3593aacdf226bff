/**
 * The muxer service: two JetStream durable consumers whose work is shared by every instance.
 *
 * - `<prefix>-muxer-media` on the media records stream: as segments arrive, each stored
 *   channel's segment is remuxed to a piece and audio windows whose inputs are settled are
 *   mixed, so when the session stops only the tail is left.
 * - `<prefix>-muxer` on the session event stream: it answers each `ExportRequested` (a client's,
 *   or the automatic one the session reactor asks for on stop) with `CompleteExport` (with the
 *   raw assets' ids) / `FailExport`, naming the try (`attempt`) it answers. It decides nothing
 *   about the session's lifecycle: which export runs, and when, is the session's; so are the
 *   paused spans the request carries, which the muxed video leaves out (`internal/pauses`).
 *
 * Crash safety: an export's video id is claimed once per (session, channel, attempt) and reused
 * by whoever retries; pieces are named by their inputs; raw asset ids and command ids are derived
 * from the video id, and the actor ignores a second completion. So a redelivered or re-run export
 * produces the same outputs (asset ids included) and `exported` appears once.
 */

import { type FfmpegTools, findOnPath, resolveFfmpegTools } from "@capture/binaries"
import {
  consumeSpan,
  counter,
  EXPORT_BOUNDARIES,
  endSpan,
  ensureDurableConsumer,
  histogram,
  type SpanParent,
  secondsSince,
} from "@capture/jetstream"
import type { MediaStore } from "@capture/media"
import { decodeSegmentRecord, ExportStore } from "@capture/media"
import {
  assetIdsOf,
  type ChannelId,
  type CommandId,
  decodeJson,
  exportUrls,
  newVideoId,
  SessionEvent,
  type SessionId,
  type TimeSpan,
  type VideoId,
} from "@capture/protocol"
import type { SessionRuntime } from "@capture/session-actor"
import { AckPolicy, DeliverPolicy, type JsMsg, jetstream, jetstreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/transport-node"
import { Result, type Tracer } from "effect"
import type { MixMode, RemuxMode } from "./internal/media.js"
import { type AssembleResult, Pipeline, type SessionChannels } from "./internal/pipeline.js"
import { MuxerStore } from "./internal/store.js"

export interface MuxerOptions {
  readonly mediaStore: MediaStore
  /** Base of the export's public URLs (`stream_url`, `player_url`: the protocol's `exportUrls`). */
  readonly publicUrl: string
  readonly log?: (message: string) => void
  /** Same prefix as the session topology: `capture` → bucket `capture_exports`, consumers `capture-muxer…`. */
  readonly prefix?: string
  readonly replicas?: number
  /** How long a delivered message may go unacknowledged before another instance gets it (kept alive while working). */
  readonly ackWaitMs?: number
  /** ffmpeg processes at once (default: 2). */
  readonly concurrency?: number
  /** Work on segments as they arrive (default true); false leaves everything to the export. */
  readonly incremental?: boolean
  /** Resolved binaries (default: `resolveFfmpegTools()`, which throws if one is missing). */
  readonly tools?: FfmpegTools
  /**
   * Raw pieces remuxed in process (`native`, the default: H.264 and AAC, anything else by ffmpeg)
   * or by one ffmpeg run per segment (`ffmpeg`, the old way, kept for benchmarks to compare).
   */
  readonly remux?: RemuxMode
  /**
   * Mix windows made in process (`native`, the default: decoded by long-lived ffmpeg decoders,
   * summed here, encoded by a long-lived ffmpeg encoder, so a window starts no process), the same
   * with one faad per channel run (`faad`), or by one ffmpeg run per window (`ffmpeg`); the last
   * two are kept for benchmarks to compare. Windows the native mix cannot reproduce go to ffmpeg.
   */
  readonly mix?: MixMode
  /** The faad binary of the `faad` mix (default: `faad` on PATH); null: none, its windows are mixed by ffmpeg. */
  readonly faad?: string | null
  /** Parts per stored manifest chunk (default `MANIFEST_CHUNK_PARTS`; tests: a few, so a short recording has several). */
  readonly manifestChunkParts?: number
}

export type { MixMode, RemuxMode } from "./internal/media.js"

const decodeEventJson = decodeJson(SessionEvent)

const exportsFinished = counter(
  "capture_exports_total",
  "Exports this muxer finished, by outcome (completed, failed)",
)
const exportSeconds = histogram(
  "capture_export_duration_seconds",
  "Time this muxer took to assemble an export, from its claim to its answer, by outcome",
  EXPORT_BOUNDARIES,
)
/** How long one pull waits for a message before the slot pulls again. */
const PULL_EXPIRES_MS = 10_000

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Deliveries of one export trigger before a persistent error fails the export. */
const MAX_EXPORT_DELIVERIES = 5

/** A running muxer. */
export class Muxer {
  /** The pulling slots of both durables; each ends on its own once `stopped` is set. */
  private readonly loops: Array<Promise<void>> = []
  private stopped = false
  private readonly handlers = new Set<Promise<void>>()
  /** Exports this instance completed or failed (for tests and health). */
  readonly completed: Array<{
    readonly videoId: string
    readonly ok: boolean
    /** Manifest chunks written at the export (the rest were made while the session ran). */
    readonly chunksWritten: number
  }> = []

  private constructor(
    private readonly nc: NatsConnection,
    private readonly runtime: SessionRuntime,
    private readonly options: MuxerOptions,
    private readonly pipeline: Pipeline,
    private readonly store: MuxerStore,
    readonly exportStore: ExportStore,
    private readonly log: (message: string) => void,
  ) {}

  /** Pieces this instance made (the ones it found stored are not counted). */
  get piecesMade(): number {
    return this.pipeline.piecesMade
  }

  /** Resolves ffmpeg, opens the exports bucket and starts both consumers. */
  static async start(nc: NatsConnection, runtime: SessionRuntime, options: MuxerOptions): Promise<Muxer> {
    const tools = options.tools ?? resolveFfmpegTools()
    const log = options.log ?? (() => {})
    const prefix = options.prefix ?? runtime.topology.options.prefix
    const store = await MuxerStore.open(nc, {
      prefix,
      replicas: options.replicas ?? runtime.topology.options.replicas,
      log,
    })
    const pipeline = new Pipeline(
      tools,
      options.mediaStore,
      store,
      options.concurrency ?? 2,
      log,
      options.remux ?? "native",
      {
        mode: options.mix ?? "native",
        faad: (options.faad === undefined ? findOnPath("faad") : options.faad) ?? undefined,
      },
      options.manifestChunkParts,
    )
    const muxer = new Muxer(
      nc,
      runtime,
      { ...options, prefix },
      pipeline,
      store,
      ExportStore.fromStore(store),
      log,
    )
    try {
      await muxer.consume(
        runtime.topology.eventStream,
        `${prefix}-muxer`,
        runtime.topology.eventSubjects,
        2,
        (m, span) => muxer.onEvent(m, span),
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
    } catch (error) {
      // Half started (NATS away): nothing left pulling, so the caller may retry the start.
      await muxer.stop()
      throw error
    }
    log(`muxer: started (ffmpeg ${tools.ffmpeg}, bucket ${store.bucket})`)
    return muxer
  }

  /**
   * Stops pulling and waits for work in progress (unacknowledged work is redelivered elsewhere). A
   * pull still open is not waited for: what it brings is put back.
   */
  async stop(): Promise<void> {
    this.stopped = true
    await Promise.allSettled([...this.handlers])
    this.pipeline.close()
  }

  private get ackWaitMs(): number {
    return this.options.ackWaitMs ?? 30_000
  }

  /**
   * Works on a durable with `parallel` slots, each pulling one message only when it is free.
   * Nothing waits in this process unacknowledged for a slot: an export takes minutes on a busy
   * machine, and a message buffered that long would outlive its ack wait, be redelivered to
   * another muxer and then be assembled by both at once (and meanwhile not by an idle one). A pull
   * that fails (a NATS node down, the consumer's leader moving, the consumer lost) is tried again
   * a second later, creating the durable again when it is gone.
   */
  private async consume(
    stream: string,
    durable: string,
    subjects: string,
    parallel: number,
    handle: (message: JsMsg, span: Tracer.Span | undefined) => Promise<void>,
  ): Promise<void> {
    const jsm = await jetstreamManager(this.nc)
    const config = {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: subjects,
      ack_wait: this.ackWaitMs * 1_000_000,
      max_ack_pending: 1_000,
      max_deliver: -1,
    }
    await ensureDurableConsumer(jsm, stream, config)
    const js = jetstream(this.nc)
    let consumer = await js.consumers.get(stream, durable)
    const slot = async (): Promise<void> => {
      while (!this.stopped) {
        let message: JsMsg | null
        try {
          message = await consumer.next({ expires: PULL_EXPIRES_MS })
        } catch (error) {
          if (this.stopped) return
          this.log(`muxer: pulling from ${durable} failed (${String(error)}); again in 1 s`)
          await sleep(1_000)
          try {
            if (String(error).includes("consumer not found")) await ensureDurableConsumer(jsm, stream, config)
            consumer = await js.consumers.get(stream, durable)
          } catch {
            // NATS still away: the next pull says so.
          }
          continue
        }
        if (message === null) continue
        const taken = message
        // Pulled as this muxer stops: put back at once rather than after the ack wait.
        if (this.stopped) {
          taken.nak()
          return
        }
        const handler = this.withHeartbeat(taken, durable, (span) => handle(taken, span))
        this.handlers.add(handler)
        await handler.finally(() => this.handlers.delete(handler))
      }
    }
    for (let i = 0; i < parallel; i++) {
      // A slot ends only when stopping; an ack or nak on a closed connection must not crash the process.
      this.loops.push(
        slot().catch((error: unknown) => this.log(`muxer: ${durable} slot ended: ${String(error)}`)),
      )
    }
  }

  /** Keeps a message from being redelivered while it is being worked on; acks or retries after. */
  private async withHeartbeat(
    message: JsMsg,
    durable: string,
    work: (span: Tracer.Span | undefined) => Promise<void>,
  ): Promise<void> {
    const timer = setInterval(() => message.working(), Math.max(500, this.ackWaitMs / 3))
    const span = consumeSpan(durable, message)
    try {
      await work(span)
      message.ack()
      endSpan(span)
    } catch (error) {
      this.log(`muxer: ${message.subject} #${message.seq} failed (${String(error)}); will retry`)
      message.nak(2_000)
      endSpan(span, error)
    } finally {
      clearInterval(timer)
    }
  }

  /**
   * A session's channel layout, from its view in the read model. Channels are fixed when the
   * session starts, long before any export, so a lagging view still has them; a view not
   * written yet is retried.
   */
  private async sessionChannels(
    sessionId: string,
  ): Promise<{ status: string; channels: SessionChannels } | undefined> {
    const record = await this.runtime.readModel.get(sessionId)
    if (record === undefined) return undefined
    const { session } = record
    return {
      status: session.status,
      channels: { channels: session.channels, primary: session.primary_video_channel_id },
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
    // A session with a segment has started: a view still `created` (no channels yet) lags behind
    // its start. Retried shortly, since skipping the record would leave a hole in the incremental
    // work (the export would then mix every window at the stop).
    if (session?.status === "created")
      throw new Error(`the view of ${record.session_id} lags behind its start`)
    // Only live sessions: after the end, the export makes whatever is missing itself.
    if (session === undefined || !["starting", "active", "stopping"].includes(session.status)) return
    await this.pipeline.onRecord(record, session.channels)
  }

  private async onEvent(message: JsMsg, span: Tracer.Span | undefined): Promise<void> {
    const decoded = decodeEventJson(message.data)
    if (Result.isFailure(decoded)) {
      this.log(`muxer: ${message.subject} #${message.seq} is not a known event; skipped`)
      return
    }
    const event = decoded.success
    // A request joining a running export only adds a WebSocket: the export is already under way.
    if (event.type !== "ExportRequested" || event.data.joins_running === true) return
    await this.export(
      event.session_id,
      event.data.video_channel_id,
      event.data.attempt ?? 0,
      event.data.paused_spans ?? [],
      message,
      span,
    )
  }

  private async export(
    sessionId: SessionId,
    videoChannelId: ChannelId | null,
    attempt: number,
    /** Spans when every stored channel was paused: left out of the muxed video. */
    pausedSpans: ReadonlyArray<TimeSpan>,
    message: JsMsg,
    cause: SpanParent | undefined,
  ): Promise<void> {
    const session = await this.sessionChannels(sessionId)
    if (session === undefined) throw new Error(`no view of session ${sessionId} yet`)
    const job = await this.store.claimJob(sessionId, `${videoChannelId ?? "-"}#${attempt}`, {
      video_id: newVideoId(),
      session_id: sessionId,
      video_channel_id: videoChannelId,
      attempt,
      created_at: new Date().toISOString(),
    })
    this.log(`muxer: export ${job.video_id} of ${sessionId} (${videoChannelId ?? "audio only"}) started`)
    const startedAt = Date.now()
    const startedAtMonotonic = performance.now()
    let result: AssembleResult
    try {
      result = await this.pipeline.assemble(sessionId, session.channels, videoChannelId, job, pausedSpans)
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
    // The session ignores an answer to a try that is no longer current (attempt) or a repeat.
    const outcome = result.ok
      ? await this.runtime.host.execute(
          {
            type: "CompleteExport",
            command_id: `mux-done-${videoId}` as CommandId,
            session_id: sessionId,
            video_channel_id: videoChannelId,
            attempt,
            video_id: videoId,
            stream_url: exportUrls(this.options.publicUrl, videoId).stream_url,
            player_url: exportUrls(this.options.publicUrl, videoId).player_url,
            asset_ids: assetIdsOf(result.metadata),
          },
          cause,
        )
      : await this.runtime.host.execute(
          {
            type: "FailExport",
            command_id: `mux-fail-${videoId}` as CommandId,
            session_id: sessionId,
            video_channel_id: videoChannelId,
            attempt,
            error: { code: result.code, message: result.message },
          },
          cause,
        )
    if (Result.isFailure(outcome)) {
      this.log(
        `muxer: export ${videoId} of ${sessionId}: the session refused the result: ${outcome.failure.message}`,
      )
    } else {
      this.log(
        `muxer: export ${videoId} of ${sessionId} ${
          result.ok
            ? `completed (${result.piecesMade} pieces, ${result.chunksWritten} manifest chunks made now)`
            : `failed (${result.message})`
        } in ${Date.now() - startedAt} ms`,
      )
    }
    const outcomeLabel = { outcome: result.ok ? "completed" : "failed" }
    exportsFinished.add(1, outcomeLabel)
    exportSeconds.observe(secondsSince(startedAtMonotonic), outcomeLabel)
    this.completed.push({ videoId, ok: result.ok, chunksWritten: result.ok ? result.chunksWritten : 0 })
  }
}
