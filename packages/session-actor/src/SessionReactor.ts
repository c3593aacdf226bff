/**
 * The session reactor: the one place that turns what happened into what follows. It reads the
 * event stream and the media record stream and issues the commands they imply:
 *
 * - the first segment of a starting session → `ReportMediaReceived` (the session is `active`);
 * - a stopping session whose every channel has sent its final segment → `FinishStopping`
 *   (checked when the stop is stored and when each final segment is, whichever comes last);
 * - an active session whose recorder has been silent (no segment, no pause or resume, and not
 *   every channel paused) for the silence timeout → `StopSession` (`recorder_silent`), finished
 *   at once since nothing more will come. Each active session has a durable `silence` timer
 *   (armed on activation, pause and resume); when it comes due the reactor looks at the
 *   session's last segment and either stops it or sets the timer again: no scan of sessions,
 *   no work per segment;
 * - a stopped session → its `store: false` segments dropped, and its automatic export asked for
 *   (`RequestExport` with `automatic`), which the muxer answers. An automatic stop with a
 *   late-media window leaves the request to the session's `late_media` timer, when the window
 *   closes.
 *
 * Any number of reactors may run: they share two durable consumers, and every command is
 * idempotent (the session decides; command ids derived from the triggering message make a
 * repeat a JetStream duplicate). A reactor killed mid-message leaves it unacknowledged, so
 * another gets it again.
 */
import {
  type DurableWork,
  type DurableWorkTarget,
  ensureDurableWork,
  type SpanParent,
  startDurableWork,
} from "@capture/jetstream"
import {
  type ChannelId,
  type CommandId,
  decodeJson,
  MediaSegment,
  newCommandId,
  type SessionCommand,
  SessionEvent,
  type SessionId,
} from "@capture/protocol"
import { DeliverPolicy, type JsMsg, jetstreamManager } from "@nats-io/jetstream"
import { Result } from "effect"
import type { ActorHost } from "./ActorHost.js"
import { SILENT_STOP_REASON } from "./Decide.js"
import type { TimerStore } from "./DurableTimers.js"
import type { SessionState } from "./SessionMachine.js"
import type { Topology } from "./Topology.js"

/** What the reactor needs of the segment store (`MediaStore` of `@capture/media` is one). */
export interface SegmentRecords {
  readonly topology: {
    /** The stream of segment records. */
    readonly stream: string
    /** Every record subject. */
    readonly subjects: string
    /** One session's record subject. */
    subject(sessionId: string): string
  }
  /** A session's segment records. */
  list(sessionId: string): Promise<ReadonlyArray<MediaSegment>>
  /** Drops a channel's segments; returns how many were dropped. */
  deleteChannel(sessionId: string, channelId: string): Promise<number>
}

/** How long a message may stay unacknowledged before another reactor gets it, by default. */
const DEFAULT_ACK_WAIT_MS = 30_000

export interface SessionReactorOptions {
  readonly segments: SegmentRecords
  /** An active session with no segment for this long is stopped (`recorder_silent`). */
  readonly silenceTimeoutMs: number
  /** How long a message may stay unacknowledged before another reactor gets it (default 30 s). */
  readonly ackWaitMs?: number
  /** Messages handled at once per stream in this process (default 8). */
  readonly parallel?: number
  /** Called before each command is issued (tests use it to stop a reactor at that point). */
  readonly beforeCommand?: (command: SessionCommand) => Promise<void>
  readonly log?: (message: string) => void
}

/**
 * The report that media arrived for a session's channel. The ingest edge sends it with the first
 * segment of a starting session (so a stop right after it is never taken for an abort) and the
 * reactor sends it from the record stream (so a crash between storing and reporting loses
 * nothing); one command id per session makes the second a duplicate.
 */
export const mediaReceived = (sessionId: SessionId, channelId: ChannelId): SessionCommand => ({
  type: "ReportMediaReceived",
  command_id: `media-received-${sessionId}` as CommandId,
  session_id: sessionId,
  channel_id: channelId,
})

const decodeEventJson = decodeJson(SessionEvent)
const decodeRecordJson = decodeJson(MediaSegment)

/** A running reactor. */
export class SessionReactor {
  private readonly work: Array<DurableWork> = []
  private readonly log: (message: string) => void

  private constructor(
    private readonly topology: Topology,
    private readonly host: ActorHost,
    private readonly timers: TimerStore,
    private readonly options: SessionReactorOptions,
  ) {
    this.log = options.log ?? (() => {})
  }

  /** Where the two consumers read: the event stream and the segment records. */
  private static targets(
    topology: Topology,
    segments: SegmentRecords["topology"],
    ackWaitMs: number,
  ): { readonly events: DurableWorkTarget; readonly records: DurableWorkTarget } {
    const { prefix } = topology.options
    return {
      events: {
        stream: topology.eventStream,
        durable: `${prefix}-reactor`,
        filterSubject: topology.eventSubjects,
        // Added to deployments with history: reacting to old stops again would export them again.
        deliverPolicy: DeliverPolicy.New,
        ackWaitMs,
      },
      records: {
        stream: segments.stream,
        durable: `${prefix}-reactor-media`,
        filterSubject: segments.subjects,
        deliverPolicy: DeliverPolicy.New,
        ackWaitMs,
      },
    }
  }

  /**
   * Creates both consumers if missing, running none: a process that issues commands but leaves
   * the reactor to others (`capture serve --role api`) does this first, so none of its events
   * comes before the consumers exist.
   */
  static async ensureConsumers(topology: Topology, segments: SegmentRecords["topology"]): Promise<void> {
    const { events, records } = SessionReactor.targets(topology, segments, DEFAULT_ACK_WAIT_MS)
    await ensureDurableWork(topology.nc, events)
    await ensureDurableWork(topology.nc, records)
  }

  /** Starts both consumers. */
  static async start(
    runtime: {
      readonly topology: Topology
      readonly host: ActorHost
      readonly timers: TimerStore
    },
    options: SessionReactorOptions,
  ): Promise<SessionReactor> {
    const reactor = new SessionReactor(runtime.topology, runtime.host, runtime.timers, options)
    const { nc } = runtime.topology
    const parallel = options.parallel ?? 8
    const targets = SessionReactor.targets(
      runtime.topology,
      options.segments.topology,
      options.ackWaitMs ?? DEFAULT_ACK_WAIT_MS,
    )
    reactor.work.push(
      await startDurableWork(nc, {
        ...targets.events,
        parallel,
        decode: (message: JsMsg) => decodeEventJson(message.data),
        handle: (event, _message, span) => reactor.onEvent(event, span),
        log: reactor.log,
      }),
      await startDurableWork(nc, {
        ...targets.records,
        parallel,
        decode: (message: JsMsg) => decodeRecordJson(message.data),
        handle: (record, _message, span) => reactor.onSegment(record, span),
        log: reactor.log,
      }),
    )
    return reactor
  }

  /** Stops both consumers, waiting for work in progress. */
  async stop(): Promise<void> {
    await Promise.all(this.work.map((w) => w.stop()))
  }

  /** Issues a command; `cause` is the span of the message it follows from. */
  private async issue(command: SessionCommand, cause?: SpanParent): Promise<void> {
    await this.options.beforeCommand?.(command)
    const outcome = await this.host.execute(command, cause)
    if (Result.isFailure(outcome)) {
      // The session moved on (ended, or never existed here): nothing follows any more.
      this.log(`reactor: ${command.type} of ${command.session_id}: ${outcome.failure.message}`)
    }
  }

  private async onEvent(event: SessionEvent, cause: SpanParent | undefined): Promise<void> {
    switch (event.type) {
      case "SessionActivated":
      case "ChannelsPaused":
      case "ChannelsResumed":
        // The silence clock (re)starts here; the timer decides when it comes due.
        return this.armSilence(event.session_id, Date.parse(event.time) + this.options.silenceTimeoutMs)
      case "SessionFailed":
        return this.timers.cancel(event.session_id, "silence")
      case "SessionStopping":
        await this.timers.cancel(event.session_id, "silence")
        if (event.data.reason === SILENT_STOP_REASON) {
          await this.issue(
            {
              type: "FinishStopping",
              command_id: `reactor-finish-${event.id}` as CommandId,
              session_id: event.session_id,
            },
            cause,
          )
          this.log(`session ${event.session_id}: recorder silent, stopped (${SILENT_STOP_REASON})`)
          return
        }
        // The recorder may have sent its final segments before the stop was stored.
        return this.finishStopIfComplete(event.session_id, cause)
      case "SessionStopped": {
        if (event.data.reason === "aborted") return
        const { state } = await this.host.load(event.session_id)
        await this.dropUnstored(event.session_id, state)
        // The session's own timer asks for it once the late media had its chance.
        if (event.data.late_media_until !== undefined) return
        await this.issue(
          {
            type: "RequestExport",
            command_id: `reactor-export-${event.id}` as CommandId,
            session_id: event.session_id,
            automatic: true,
          },
          cause,
        )
        return
      }
      default:
        return
    }
  }

  private async onSegment(record: MediaSegment, cause: SpanParent | undefined): Promise<void> {
    const { state } = await this.host.load(record.session_id)
    if (state.value === "starting") {
      await this.issue(mediaReceived(record.session_id, record.channel_id), cause)
    }
    if (record.final && state.value === "stopping") await this.finishStopIfComplete(record.session_id, cause)
  }

  /** Finishes a stopping session once every channel has sent its final segment. */
  private async finishStopIfComplete(sessionId: SessionId, cause: SpanParent | undefined): Promise<void> {
    const { state } = await this.host.load(sessionId)
    if (state.value !== "stopping") return
    const finals = new Set(
      (await this.options.segments.list(sessionId)).filter((r) => r.final).map((r) => r.channel_id),
    )
    if (!state.context.channels.every((c) => finals.has(c.channel_id))) return
    await this.issue(
      {
        type: "FinishStopping",
        command_id: `reactor-finish-${sessionId}-${state.context.stop_deadline ?? ""}` as CommandId,
        session_id: sessionId,
      },
      cause,
    )
  }

  /** Segments of `store: false` channels were only for live use: dropped once the session stopped. */
  private async dropUnstored(sessionId: SessionId, state: SessionState): Promise<void> {
    for (const channel of state.context.channels.filter((c) => !c.store)) {
      const dropped = await this.options.segments.deleteChannel(sessionId, channel.channel_id)
      if (dropped > 0) this.log(`reactor: dropped ${dropped} segments of ${sessionId}/${channel.channel_id}`)
    }
  }

  private armSilence(sessionId: SessionId, at: number): Promise<void> {
    return this.timers.schedule({
      session_id: sessionId,
      timer: "silence",
      deadline: new Date(at).toISOString(),
    })
  }

  /**
   * A session's `silence` timer came due (or a test asks): stops the session if its recorder has
   * been silent longer than the timeout, else sets the timer for when it would be. Any number of
   * reactors may check at once: stopping is idempotent. Returns whether it asked for the stop.
   */
  async checkSilence(sessionId: SessionId, now = Date.now()): Promise<boolean> {
    const { state } = await this.host.load(sessionId)
    if (state.value !== "active") {
      await this.timers.cancel(sessionId, "silence")
      return false
    }
    const segments = this.options.segments.topology
    const jsm = await jetstreamManager(this.topology.nc)
    const last = await jsm.streams
      .getMessage(segments.stream, { last_by_subj: segments.subject(sessionId) })
      .catch(() => null)
    // A last record that does not decode (the media consumer parked and logged it) is no sign of life.
    const lastRecord = last === null ? undefined : decodeRecordJson(last.data)
    const lastSegmentAt =
      lastRecord !== undefined && Result.isSuccess(lastRecord)
        ? Date.parse(lastRecord.success.stored_at)
        : Number.NEGATIVE_INFINITY
    const silentSince = this.silentSince(state, lastSegmentAt)
    if (silentSince === undefined) {
      await this.armSilence(sessionId, now + this.options.silenceTimeoutMs)
      return false
    }
    if (now - silentSince <= this.options.silenceTimeoutMs) {
      await this.armSilence(sessionId, silentSince + this.options.silenceTimeoutMs + 1)
      return false
    }
    await this.issue({
      type: "StopSession",
      command_id: newCommandId(),
      session_id: sessionId,
      reason: SILENT_STOP_REASON,
    })
    await this.timers.cancel(sessionId, "silence")
    return true
  }

  /**
   * Since when the recorder has been silent: its last segment, pause or resume, or the last event;
   * undefined while every channel is paused (a pause is not silence).
   */
  private silentSince(state: SessionState, lastSegmentAt: number): number | undefined {
    const c = state.context
    const paused = new Set<ChannelId>(
      c.channel_pauses.filter((p) => p.to_ms === null).map((p) => p.channel_id),
    )
    if (c.channels.length > 0 && c.channels.every((ch) => paused.has(ch.channel_id))) return undefined
    return Math.max(
      lastSegmentAt,
      Date.parse(c.pauses_changed_at ?? "") || Number.NEGATIVE_INFINITY,
      Date.parse(c.updated_at ?? "") || Number.NEGATIVE_INFINITY,
    )
  }
}
