/**
 * Deciding: given a session's state and a command, the one event to persist, nothing (an
 * idempotent repeat), or a `CaptureError` saying why not. Pure: time and ids come in as inputs,
 * so the event fully records the outcome and replay never needs them again.
 */
import {
  type CaptureError,
  type Channel,
  type ChannelExport,
  type ChannelId,
  type CommandOf,
  captureError,
  channelKind,
  EVENT_SCHEMA_VERSION,
  type EventDraft,
  newEventId,
  newRtstreamId,
  rtstreamCategoryOf,
  rtstreamIdOf,
  type SessionCommand,
  type SessionEvent,
  typeOfKind,
} from "@capture/protocol"
import { Result } from "effect"
import { automaticExport, pausedSpans } from "./ExportPolicy.js"
import { exportKey, type SessionState } from "./SessionMachine.js"

/** Settings that shape decisions. */
export interface DecideOptions {
  /** How long a started session may wait for its first media before it fails. */
  readonly startTimeoutMs: number
  /** How long a stopping session may take to finalize before it is forced to `stopped`. */
  readonly stopTimeoutMs: number
  /** How long a created session may wait to be started before it fails `expired` (default 24 h). */
  readonly expireTimeoutMs?: number
  /**
   * After an automatic stop (silence, stop timeout), how long segments recorded before the stop
   * are still taken before the automatic export is asked for (default 0: none, export at once).
   */
  readonly lateMediaGraceMs?: number
}

/** The stop reason of a session whose recorder went silent. */
export const SILENT_STOP_REASON = "recorder_silent"
/** Stops nobody asked to finish: their recorder may still hold media recorded before them. */
const AUTOMATIC_STOP_REASONS: ReadonlyArray<string> = [SILENT_STOP_REASON, "stop_timeout"]

/**
 * The `SessionStopped` of `reason`: an automatic stop of a session with a stored channel opens a
 * late-media window (media before the stop instant, taken until the grace period ends).
 */
const stoppedEvent = (state: SessionState, reason: string, now: Date, options: DecideOptions): EventDraft => {
  const grace = options.lateMediaGraceMs ?? 0
  if (
    grace <= 0 ||
    !AUTOMATIC_STOP_REASONS.includes(reason) ||
    !state.context.channels.some((c) => c.store)
  ) {
    return { type: "SessionStopped", data: { reason } }
  }
  return {
    type: "SessionStopped",
    data: {
      reason,
      media_before: state.context.stop_requested_at ?? isoTime(now),
      late_media_until: new Date(now.getTime() + grace).toISOString(),
    },
  }
}

/** A created session never started fails after this long unless configured otherwise. */
export const DEFAULT_EXPIRE_TIMEOUT_MS = 24 * 60 * 60 * 1000

/** The outcome: one event, or `null` when the command changes nothing (an idempotent repeat). */
export type Decision = Result.Result<EventDraft | null, CaptureError>

const ok = (draft: EventDraft | null): Decision => Result.succeed(draft)
const no = (error: CaptureError): Decision => Result.fail(error)

const invalidTransition = (state: SessionState, action: string): Decision =>
  no(
    captureError("invalid_transition", `cannot ${action} a session that is ${state.value}`, {
      current_status: state.value === "none" ? "created" : state.value,
    }),
  )

const isHttpUrl = (value: string): boolean => {
  try {
    const url = new URL(value)
    return url.protocol === "http:" || url.protocol === "https:"
  } catch {
    return false
  }
}

const checkCallbackUrl = (url: string | undefined): CaptureError | undefined =>
  url === undefined || isHttpUrl(url)
    ? undefined
    : captureError("invalid_callback_url", "callback_url must be an http(s) URL", { field: "callback_url" })

/** Resolves channel defaults and checks the rules a start must satisfy. */
export const resolveChannels = (
  command: CommandOf<"StartSession">,
): Result.Result<{ channels: ReadonlyArray<Channel>; primary: ChannelId | null }, CaptureError> => {
  const inputs = command.channels
  if (inputs.length === 0) {
    return Result.fail(captureError("no_channels", "start needs at least one channel", { field: "channels" }))
  }
  const seen = new Set<string>()
  const channels: Array<Channel> = []
  let flaggedPrimary: ChannelId | undefined
  for (const [i, input] of inputs.entries()) {
    if (seen.has(input.channel_id)) {
      return Result.fail(
        captureError("duplicate_channel_id", `channel ${input.channel_id} is listed twice`, {
          field: `channels[${i}].channel_id`,
        }),
      )
    }
    seen.add(input.channel_id)
    const kindType = typeOfKind(channelKind(input.channel_id))
    if (input.type !== undefined && input.type !== kindType) {
      return Result.fail(
        captureError(
          "channel_type_mismatch",
          `${input.channel_id} is a ${kindType} channel, not ${input.type}`,
          {
            field: `channels[${i}].type`,
          },
        ),
      )
    }
    if (input.is_primary === true) {
      if (kindType !== "video") {
        return Result.fail(
          captureError("primary_channel_not_video", `${input.channel_id} is not a video channel`, {
            field: `channels[${i}].is_primary`,
          }),
        )
      }
      if (flaggedPrimary !== undefined) {
        return Result.fail(
          captureError("multiple_primary_channels", "only one channel may be primary", {
            field: `channels[${i}].is_primary`,
          }),
        )
      }
      flaggedPrimary = input.channel_id
    }
    channels.push({
      channel_id: input.channel_id,
      name: input.channel_name ?? input.name ?? input.channel_id,
      type: kindType,
      store: input.store ?? true,
      is_primary: false,
    })
  }
  const explicit = command.primary_video_channel_id
  if (explicit !== undefined) {
    const channel = channels.find((c) => c.channel_id === explicit)
    if (channel === undefined) {
      return Result.fail(
        captureError("primary_channel_not_found", `${explicit} is not one of the channels`, {
          field: "primary_video_channel_id",
        }),
      )
    }
    if (channel.type !== "video") {
      return Result.fail(
        captureError("primary_channel_not_video", `${explicit} is not a video channel`, {
          field: "primary_video_channel_id",
        }),
      )
    }
    if (flaggedPrimary !== undefined && flaggedPrimary !== explicit) {
      return Result.fail(
        captureError("multiple_primary_channels", `${flaggedPrimary} is flagged primary, not ${explicit}`, {
          field: "primary_video_channel_id",
        }),
      )
    }
  }
  const primary = explicit ?? flaggedPrimary ?? channels.find((c) => c.type === "video")?.channel_id ?? null
  return Result.succeed({
    channels: channels.map((c) => (c.channel_id === primary ? { ...c, is_primary: true } : c)),
    primary,
  })
}

const exportOf = (state: SessionState, channel: ChannelId | null): ChannelExport | undefined =>
  state.context.exports.find((e) => e.video_channel_id === channel)

const attemptOf = (state: SessionState, channel: ChannelId | null): number =>
  state.context.export_failures[exportKey(channel)] ?? 0

/** The export request's data for a new try of `target`. */
const exportTry = (state: SessionState, target: ChannelId | null) => ({
  video_channel_id: target,
  attempt: attemptOf(state, target),
  paused_spans: pausedSpans(state.context.channels, state.context.channel_pauses),
})

/** The session's own export on stop, asked for once by the session reactor. */
const decideAutomaticExport = (state: SessionState): Decision => {
  if (state.value !== "stopped" || state.context.automatic_export_requested) return ok(null)
  const { channels, primary_video_channel_id, stop_reason } = state.context
  const target = automaticExport(channels, primary_video_channel_id, stop_reason ?? "requested")
  if (target === undefined || exportOf(state, target)?.export_status !== "exporting") return ok(null)
  return ok({ type: "ExportRequested", data: { ...exportTry(state, target), automatic: true } })
}

const decideExport = (state: SessionState, command: CommandOf<"RequestExport">): Decision => {
  if (command.automatic === true) return decideAutomaticExport(state)
  if (state.value !== "stopped" && state.value !== "exported") return invalidTransition(state, "export")
  const { channels, rtstreams, primary_video_channel_id } = state.context
  if (!channels.some((c) => c.store)) {
    return no(captureError("no_stored_channel", "export only runs if at least one channel has store: true"))
  }
  if (rtstreams.length === 0) {
    return no(
      captureError("no_media", "the session stopped before any media arrived; there is nothing to export"),
    )
  }
  const target = command.video_channel_id ?? primary_video_channel_id
  if (target !== null) {
    const channel = channels.find((c) => c.channel_id === target)
    if (channel === undefined || channel.type !== "video") {
      return no(
        captureError("export_channel_not_found", `${target} is not a video channel of this session`, {
          field: "video_channel_id",
        }),
      )
    }
    if (!channel.store) {
      return no(
        captureError("export_channel_not_stored", `${target} has store: false and is never exported`, {
          field: "video_channel_id",
        }),
      )
    }
  } else if (!channels.some((c) => c.store && c.type === "audio")) {
    return no(captureError("no_stored_channel", "no stored channel to export"))
  }
  const ws = command.ws_connection_id
  const existing = exportOf(state, target)
  if (existing !== undefined && existing.export_status !== "failed") {
    // A new socket asking while the export runs joins it, so it gets the `exported` message.
    const joins =
      existing.export_status === "exporting" &&
      ws !== undefined &&
      ws !== "" &&
      !state.context.ws_connection_ids.includes(ws)
    return joins
      ? ok({
          type: "ExportRequested",
          data: { video_channel_id: target, ws_connection_id: ws, joins_running: true },
        })
      : ok(null)
  }
  return ok({
    type: "ExportRequested",
    data: { ...exportTry(state, target), ...(ws === undefined ? {} : { ws_connection_id: ws }) },
  })
}

/** Channel ids a pause or resume names, checked against the session's channels. */
const namedChannels = (
  state: SessionState,
  ids: ReadonlyArray<ChannelId> | undefined,
): Result.Result<ReadonlyArray<ChannelId>, CaptureError> => {
  const channels = state.context.channels.map((c) => c.channel_id)
  if (ids === undefined) return Result.succeed(channels)
  for (const [i, id] of ids.entries()) {
    if (!channels.includes(id)) {
      return Result.fail(
        captureError("channel_not_found", `${id} is not a channel of this session`, {
          field: `channel_ids[${i}]`,
        }),
      )
    }
  }
  return Result.succeed(ids)
}

const decidePause = (
  state: SessionState,
  command: CommandOf<"PauseChannels"> | CommandOf<"ResumeChannels">,
  now: Date,
): Decision => {
  const pausing = command.type === "PauseChannels"
  if (state.value !== "starting" && state.value !== "active") {
    return invalidTransition(state, pausing ? "pause" : "resume")
  }
  const named = namedChannels(state, command.channel_ids)
  if (Result.isFailure(named)) return no(named.failure)
  const paused = new Set(
    state.context.channel_pauses.filter((p) => p.to_ms === null).map((p) => p.channel_id),
  )
  // Only what changes: pausing a paused channel (or resuming a running one) is a repeat.
  const changed = [...new Set(named.success)].filter((id) => paused.has(id) !== pausing)
  if (changed.length === 0) return ok(null)
  const at_ms = command.at_ms ?? now.getTime()
  return ok(
    pausing
      ? { type: "ChannelsPaused", data: { channel_ids: changed, at_ms } }
      : { type: "ChannelsResumed", data: { channel_ids: changed, at_ms } },
  )
}

/**
 * Stopping or starting an rtstream: only its real-time side, while the session captures (active or
 * stopping). Once the session has ended every rtstream is stopped, so a stop is a repeat and a start
 * is refused; an rtstream the session does not have is not found.
 */
const decideRtstreamStatus = (
  state: SessionState,
  command: CommandOf<"StopRtstream"> | CommandOf<"StartRtstream">,
): Decision => {
  const stopping = command.type === "StopRtstream"
  const id = command.rtstream_id
  if (!state.context.rtstreams.some((r) => r.rtstream_id === id)) {
    return no(captureError("rtstream_not_found", `no rtstream ${id}`, { field: "rtstream_id" }))
  }
  if (state.value !== "active" && state.value !== "stopping") {
    return stopping ? ok(null) : invalidTransition(state, "start an rtstream of")
  }
  if (state.context.stopped_rtstream_ids.includes(id) === stopping) return ok(null)
  return ok(
    stopping
      ? { type: "RtstreamStopped", data: { rtstream_id: id } }
      : { type: "RtstreamStarted", data: { rtstream_id: id } },
  )
}

/** A muxer's answer for a try that is no longer the current one changes nothing. */
const staleAttempt = (state: SessionState, channel: ChannelId | null, attempt: number | undefined) =>
  attempt !== undefined && attempt !== attemptOf(state, channel)

let isoMs = Number.NaN
let isoText = ""

/** `toISOString`, reused within a millisecond (commands arrive many per millisecond under load). */
const isoTime = (now: Date): string => {
  const ms = now.getTime()
  if (ms !== isoMs) {
    isoMs = ms
    isoText = now.toISOString()
  }
  return isoText
}

/** The stored form of a decided event: the envelope around a draft, next in the session's sequence. */
export const toEvent = (
  state: SessionState,
  command: SessionCommand,
  draft: EventDraft,
  now: Date,
): SessionEvent =>
  // One literal of fixed shape (not a spread): the hot path builds one of these per command.
  ({
    type: draft.type,
    id: newEventId(),
    session_id: command.session_id,
    sequence: state.context.sequence + 1,
    time: isoTime(now),
    schema_version: EVENT_SCHEMA_VERSION,
    command_id: command.command_id,
    data: draft.data,
  }) as SessionEvent

/** Decides what a command does to a session. */
export const decide = (
  state: SessionState,
  command: SessionCommand,
  now: Date,
  options: DecideOptions,
): Decision => {
  const exists = state.value !== "none"
  if (!exists && command.type !== "CreateSession") {
    return no(captureError("session_not_found", `session ${command.session_id} does not exist`))
  }
  switch (command.type) {
    case "CreateSession": {
      if (exists) {
        return state.context.created_by === command.command_id
          ? ok(null)
          : no(captureError("session_already_exists", `session ${command.session_id} already exists`))
      }
      const badUrl = checkCallbackUrl(command.callback_url)
      if (badUrl) return no(badUrl)
      return ok({
        type: "SessionCreated",
        data: {
          collection_id: command.collection_id,
          end_user_id: command.end_user_id,
          account_id: command.account_id ?? "default",
          metadata: command.metadata ?? {},
          ...(command.client_id === undefined ? {} : { client_id: command.client_id }),
          ...(command.callback_url === undefined ? {} : { callback_url: command.callback_url }),
          ...(command.ws_connection_id === undefined ? {} : { ws_connection_id: command.ws_connection_id }),
          expire_deadline: new Date(
            now.getTime() + (options.expireTimeoutMs ?? DEFAULT_EXPIRE_TIMEOUT_MS),
          ).toISOString(),
        },
      })
    }
    case "StartSession": {
      if (state.value !== "created") return invalidTransition(state, "start")
      const badUrl = checkCallbackUrl(command.callback_url)
      if (badUrl) return no(badUrl)
      const resolved = resolveChannels(command)
      if (Result.isFailure(resolved)) return no(resolved.failure)
      return ok({
        type: "SessionStarting",
        data: {
          channels: resolved.success.channels,
          primary_video_channel_id: resolved.success.primary,
          start_deadline: new Date(now.getTime() + options.startTimeoutMs).toISOString(),
          ...(command.callback_url === undefined ? {} : { callback_url: command.callback_url }),
          ...(command.ws_connection_id === undefined ? {} : { ws_connection_id: command.ws_connection_id }),
        },
      })
    }
    case "ReportMediaReceived": {
      if (!state.context.channels.some((c) => c.channel_id === command.channel_id)) {
        return no(
          captureError("channel_not_found", `${command.channel_id} is not a channel of this session`, {
            field: "channel_id",
          }),
        )
      }
      if (state.value === "active" || state.value === "stopping") return ok(null)
      if (state.value !== "starting") return invalidTransition(state, "receive media for")
      return ok({
        type: "SessionActivated",
        data: {
          // One per channel: the capture channel in `name`, the SDK's category in `channel_id`.
          rtstreams: state.context.channels.map((c, index) => ({
            rtstream_id: rtstreamIdOf(command.session_id, index) ?? newRtstreamId(),
            name: c.channel_id,
            channel_id: rtstreamCategoryOf(c.channel_id),
            media_types: [c.type],
          })),
        },
      })
    }
    case "StopSession": {
      switch (state.value) {
        case "created":
        case "starting":
          // Nothing was captured: the session ends without an export (LiveKit calls it aborted).
          return ok({ type: "SessionStopped", data: { reason: "aborted" } })
        case "active":
          return ok({
            type: "SessionStopping",
            data: {
              reason: command.reason ?? "requested",
              stop_deadline: new Date(now.getTime() + options.stopTimeoutMs).toISOString(),
            },
          })
        default:
          return ok(null)
      }
    }
    case "FinishStopping": {
      if (state.value === "stopping") {
        return ok(stoppedEvent(state, state.context.stop_reason ?? "requested", now, options))
      }
      if (state.value === "stopped" || state.value === "exported" || state.value === "failed") return ok(null)
      return invalidTransition(state, "finish stopping")
    }
    case "RequestExport":
      return decideExport(state, command)
    case "CompleteExport": {
      if (state.value !== "stopped" && state.value !== "exported")
        return invalidTransition(state, "complete an export of")
      if (exportOf(state, command.video_channel_id)?.export_status === "exported") return ok(null)
      if (staleAttempt(state, command.video_channel_id, command.attempt)) return ok(null)
      return ok({
        type: "ExportCompleted",
        data: {
          video_channel_id: command.video_channel_id,
          video_id: command.video_id,
          stream_url: command.stream_url,
          player_url: command.player_url,
          ...(command.asset_ids === undefined ? {} : { asset_ids: command.asset_ids }),
        },
      })
    }
    case "FailExport": {
      if (state.value !== "stopped" && state.value !== "exported")
        return invalidTransition(state, "fail an export of")
      const status = exportOf(state, command.video_channel_id)?.export_status
      if (status === "exported" || status === "failed") return ok(null)
      if (staleAttempt(state, command.video_channel_id, command.attempt)) return ok(null)
      return ok({
        type: "ExportFailed",
        data: { video_channel_id: command.video_channel_id, error: command.error },
      })
    }
    case "FailSession": {
      if (state.value === "failed") return ok(null)
      // A session that ended its capture keeps its outcome: a late report cannot undo it.
      if (state.value === "stopped" || state.value === "exported") {
        return no(
          captureError("session_ended", `session ${command.session_id} has already ended (${state.value})`, {
            current_status: state.value,
          }),
        )
      }
      return ok({ type: "SessionFailed", data: { error: command.error } })
    }
    case "PauseChannels":
    case "ResumeChannels":
      return decidePause(state, command, now)
    case "StopRtstream":
    case "StartRtstream":
      return decideRtstreamStatus(state, command)
    case "FireTimer": {
      // A timer that no longer matches the state is stale: the session moved on in time.
      if (
        command.timer === "expire" &&
        state.value === "created" &&
        state.context.expire_deadline === command.deadline
      ) {
        return ok({
          type: "SessionFailed",
          data: { error: { code: "expired", message: "the session was never started before it expired" } },
        })
      }
      if (
        command.timer === "start" &&
        state.value === "starting" &&
        state.context.start_deadline === command.deadline
      ) {
        return ok({
          type: "SessionFailed",
          data: {
            error: {
              code: "start_timeout",
              message: `no media arrived within ${Math.round(options.startTimeoutMs / 1000)} s of start`,
            },
          },
        })
      }
      if (
        command.timer === "stop" &&
        state.value === "stopping" &&
        state.context.stop_deadline === command.deadline
      ) {
        return ok(stoppedEvent(state, "stop_timeout", now, options))
      }
      if (
        command.timer === "late_media" &&
        state.value === "stopped" &&
        state.context.late_media_until === command.deadline
      ) {
        return decideAutomaticExport(state)
      }
      return ok(null)
    }
  }
}
