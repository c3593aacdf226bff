/**
 * `decide` on its own: a command, a state and the clock in; one event draft, nothing, or a
 * refusal out. States are reached by running commands the way the host does (`Session`).
 * What the machine tests already pin down is not repeated here: start with no channels, duplicate
 * ids, two flagged primaries, an unknown primary, a type mismatch; export of an unstored display or
 * before the stop; the expiry timer, pauses of an active session, attempts and stale answers.
 */
import {
  type CaptureError,
  DEFAULT_COLLECTION,
  type EventDraft,
  newSessionId,
  type RtstreamId,
  type SessionCommand,
  type VideoId,
} from "@capture/protocol"
import { Result } from "effect"
import { describe, expect, it } from "vitest"
import {
  applyEvent,
  DEFAULT_EXPIRE_TIMEOUT_MS,
  decide,
  type SessionState,
  SILENT_STOP_REASON,
  toEvent,
} from "../src/index.js"
import { cmd, create, exportOf, finish, media, start, stop } from "./commands.js"
import { now, options, Session } from "./Session.js"

const id = newSessionId()
/** The rtstream of the session's first channel (`mic:default`). */
const mic = `rts-${id.slice("cap-".length)}-00` as RtstreamId

const completed = (video_channel_id: string | null) =>
  cmd("CompleteExport", id, {
    video_channel_id,
    video_id: "m-1" as VideoId,
    stream_url: "s",
    player_url: "p",
  })
const failedExport = (video_channel_id: string | null) =>
  cmd("FailExport", id, { video_channel_id, error: { code: "no_segments", message: "nothing recorded" } })
const failSession = () => cmd("FailSession", id, { error: { code: "capture_error", message: "device lost" } })
const timer = (kind: "start" | "stop", deadline: string) => cmd("FireTimer", id, { timer: kind, deadline })

/** The states of a session's life, each reached by its commands. */
const lifeSteps = {
  none: [],
  created: [create(id)],
  starting: [create(id), start(id)],
  active: [create(id), start(id), media(id)],
  stopping: [create(id), start(id), media(id), stop(id)],
  stopped: [create(id), start(id), media(id), stop(id), finish(id)],
  exported: [create(id), start(id), media(id), stop(id), finish(id), completed("display:1")],
  failed: [create(id), failSession()],
} satisfies Record<string, ReadonlyArray<SessionCommand>>
type Status = keyof typeof lifeSteps

const sessionAt = (status: Status): Session => {
  const s = new Session()
  for (const command of lifeSteps[status]) s.ok(command)
  expect(s.state.value).toBe(status)
  return s
}
const at = (status: Status): SessionState => sessionAt(status).state

const decided = (state: SessionState, command: SessionCommand): EventDraft | null => {
  const decision = decide(state, command, now, options)
  if (Result.isFailure(decision)) throw new Error(`${command.type} refused: ${decision.failure.message}`)
  return decision.success
}
const refused = (state: SessionState, command: SessionCommand): CaptureError => {
  const decision = decide(state, command, now, options)
  if (Result.isSuccess(decision)) throw new Error(`${command.type} was accepted`)
  return decision.failure
}
const after = (ms: number) => new Date(now.getTime() + ms).toISOString()

/** Stopped with two stored displays: display:1 (the primary) exporting since the stop. */
const twoDisplaysStopped = (): Session => {
  const s = new Session()
  s.ok(create(id))
  s.ok(start(id, [{ channel_id: "display:1" }, { channel_id: "display:2" }]))
  s.ok(media(id, "display:1"))
  s.ok(stop(id))
  s.ok(finish(id))
  return s
}

describe("decide", () => {
  it("refuses every command but create for a session that does not exist", () => {
    const commands = [
      start(id),
      media(id),
      stop(id),
      finish(id),
      exportOf(id),
      completed("display:1"),
      failedExport("display:1"),
      failSession(),
      cmd("PauseChannels", id, {}),
      cmd("ResumeChannels", id, {}),
      cmd("StopRtstream", id, { rtstream_id: mic }),
      cmd("StartRtstream", id, { rtstream_id: mic }),
      timer("start", after(0)),
    ]
    for (const command of commands) {
      expect(refused(at("none"), command)).toMatchObject({ error_code: "session_not_found" })
    }
  })

  it("is pure: the same state and command decide the same, and the state is left as it was", () => {
    const state = at("active")
    const before = structuredClone(state)
    expect(decided(state, stop(id))).toEqual(decided(state, stop(id)))
    expect(state).toEqual(before)
  })

  describe("CreateSession", () => {
    it("creates with the defaults, carrying only the optional fields given", () => {
      expect(decided(at("none"), create(id))).toEqual({
        type: "SessionCreated",
        data: {
          collection_id: DEFAULT_COLLECTION,
          end_user_id: "user-1",
          account_id: "default",
          metadata: {},
          expire_deadline: after(DEFAULT_EXPIRE_TIMEOUT_MS),
        },
      })
      const full = cmd("CreateSession", id, {
        collection_id: DEFAULT_COLLECTION,
        end_user_id: "u",
        account_id: "acct-1",
        client_id: "client-1",
        callback_url: "https://example.com/hook",
        ws_connection_id: "ws-1",
        metadata: { course: "42" },
      })
      expect(decided(at("none"), full)?.data).toEqual({
        collection_id: DEFAULT_COLLECTION,
        end_user_id: "u",
        account_id: "acct-1",
        metadata: { course: "42" },
        client_id: "client-1",
        callback_url: "https://example.com/hook",
        ws_connection_id: "ws-1",
        expire_deadline: after(DEFAULT_EXPIRE_TIMEOUT_MS),
      })
      const configured = decide(at("none"), create(id), now, { ...options, expireTimeoutMs: 60_000 })
      expect(Result.getOrThrow(configured)?.data).toMatchObject({ expire_deadline: after(60_000) })
    })

    it("refuses a callback URL that is not http(s)", () => {
      for (const callback_url of ["ftp://example.com/hook", "not a url"]) {
        const command = cmd("CreateSession", id, {
          collection_id: DEFAULT_COLLECTION,
          end_user_id: "u",
          callback_url,
        })
        expect(refused(at("none"), command)).toMatchObject({
          error_code: "invalid_callback_url",
          field: "callback_url",
        })
      }
    })
  })

  describe("StartSession", () => {
    it("starts a created session with its channels, primary, deadline, callback and connection", () => {
      const command = cmd("StartSession", id, {
        channels: [
          { channel_id: "mic:default", name: "Microphone" },
          { channel_id: "display:1" },
          { channel_id: "display:2", store: false },
        ],
        primary_video_channel_id: "display:2",
        callback_url: "http://example.com/late",
        ws_connection_id: "ws-2",
      })
      expect(decided(at("created"), command)).toEqual({
        type: "SessionStarting",
        data: {
          channels: [
            { channel_id: "mic:default", name: "Microphone", type: "audio", store: true, is_primary: false },
            { channel_id: "display:1", name: "display:1", type: "video", store: true, is_primary: false },
            { channel_id: "display:2", name: "display:2", type: "video", store: false, is_primary: true },
          ],
          primary_video_channel_id: "display:2",
          start_deadline: after(options.startTimeoutMs),
          callback_url: "http://example.com/late",
          ws_connection_id: "ws-2",
        },
      })
    })

    it("has no primary for audio only", () => {
      const draft = decided(at("created"), start(id, [{ channel_id: "mic:default" }]))
      expect(draft?.data).toMatchObject({ primary_video_channel_id: null })
    })

    it("refuses anything but a created session, naming its status", () => {
      for (const status of ["starting", "active", "stopping", "stopped", "exported", "failed"] as const) {
        expect(refused(at(status), start(id))).toMatchObject({
          error_code: "invalid_transition",
          current_status: status,
        })
      }
    })

    it("refuses a bad callback URL and a primary that is not a video channel", () => {
      const created = at("created")
      expect(
        refused(
          created,
          cmd("StartSession", id, { channels: [{ channel_id: "display:1" }], callback_url: "mailto:x" }),
        ),
      ).toMatchObject({ error_code: "invalid_callback_url", field: "callback_url" })
      expect(refused(created, start(id, [{ channel_id: "mic:default", is_primary: true }]))).toMatchObject({
        error_code: "primary_channel_not_video",
        field: "channels[0].is_primary",
      })
      const audioPrimary = cmd("StartSession", id, {
        channels: [{ channel_id: "mic:default" }, { channel_id: "display:1" }],
        primary_video_channel_id: "mic:default",
      })
      expect(refused(created, audioPrimary)).toMatchObject({
        error_code: "primary_channel_not_video",
        field: "primary_video_channel_id",
      })
      const disagreeing = cmd("StartSession", id, {
        channels: [{ channel_id: "display:1", is_primary: true }, { channel_id: "display:2" }],
        primary_video_channel_id: "display:2",
      })
      expect(refused(created, disagreeing)).toMatchObject({
        error_code: "multiple_primary_channels",
        field: "primary_video_channel_id",
      })
    })
  })

  describe("ReportMediaReceived", () => {
    it("activates a starting session with one rtstream per channel", () => {
      const draft = decided(at("starting"), media(id))
      if (draft?.type !== "SessionActivated") throw new Error(`not activated: ${draft?.type}`)
      const rtstreams = draft.data.rtstreams
      // The SDK's category in channel_id, the capture channel in name; ids derived from the session.
      expect(rtstreams.map((r) => [r.channel_id, r.name, r.media_types])).toEqual([
        ["mic", "mic:default", ["audio"]],
        ["system_audio", "system_audio:default", ["audio"]],
        ["screen", "display:1", ["video"]],
      ])
      expect(rtstreams.map((r) => r.rtstream_id)).toEqual(
        ["00", "01", "02"].map((n) => `rts-${id.slice("cap-".length)}-${n}`),
      )
    })

    it("changes nothing once active or stopping, and refuses it later or for another channel", () => {
      expect(decided(at("active"), media(id))).toBeNull()
      expect(decided(at("stopping"), media(id, "display:1"))).toBeNull()
      expect(refused(at("stopped"), media(id))).toMatchObject({
        error_code: "invalid_transition",
        current_status: "stopped",
      })
      expect(refused(at("starting"), media(id, "display:9"))).toMatchObject({
        error_code: "channel_not_found",
        field: "channel_id",
      })
    })
  })

  describe("StopSession", () => {
    it("stops an active session with the reason given (default requested) and a deadline", () => {
      expect(decided(at("active"), stop(id))).toEqual({
        type: "SessionStopping",
        data: { reason: "requested", stop_deadline: after(options.stopTimeoutMs) },
      })
      expect(decided(at("active"), cmd("StopSession", id, { reason: "silence" }))?.data).toMatchObject({
        reason: "silence",
      })
    })

    it("aborts a created session, and changes nothing once stopping or later", () => {
      expect(decided(at("created"), stop(id))).toEqual({
        type: "SessionStopped",
        data: { reason: "aborted" },
      })
      for (const status of ["stopping", "stopped", "exported", "failed"] as const) {
        expect(decided(at(status), stop(id))).toBeNull()
      }
    })
  })

  describe("FinishStopping", () => {
    it("stops a stopping session with its stop reason, and changes nothing once it has stopped or ended", () => {
      const stopping = sessionAt("active")
      stopping.ok(cmd("StopSession", id, { reason: "silence" }))
      expect(decided(stopping.state, finish(id))).toEqual({
        type: "SessionStopped",
        data: { reason: "silence" },
      })
      for (const status of ["stopped", "exported", "failed"] as const) {
        expect(decided(at(status), finish(id))).toBeNull()
      }
    })

    it("refuses a session that is not stopping", () => {
      for (const status of ["created", "starting", "active"] as const) {
        expect(refused(at(status), finish(id))).toMatchObject({
          error_code: "invalid_transition",
          current_status: status,
        })
      }
    })
  })

  describe("RequestExport", () => {
    it("requests another display as its first try, carrying the connection to tell", () => {
      const twoDisplays = twoDisplaysStopped()
      expect(decided(twoDisplays.state, exportOf(id, "display:2"))).toEqual({
        type: "ExportRequested",
        data: { video_channel_id: "display:2", attempt: 0, paused_spans: [] },
      })
      expect(
        decided(
          twoDisplays.state,
          cmd("RequestExport", id, { video_channel_id: "display:2", ws_connection_id: "ws-3" }),
        )?.data,
      ).toMatchObject({ video_channel_id: "display:2", ws_connection_id: "ws-3" })
    })

    it("reports a running export, which a new connection joins", () => {
      // display:1 is the primary, exporting since the stop.
      const twoDisplays = twoDisplaysStopped()
      expect(decided(twoDisplays.state, exportOf(id, "display:1"))).toBeNull()
      const joining = cmd("RequestExport", id, { video_channel_id: "display:1", ws_connection_id: "ws-3" })
      expect(decided(twoDisplays.state, joining)).toEqual({
        type: "ExportRequested",
        data: { video_channel_id: "display:1", ws_connection_id: "ws-3", joins_running: true },
      })
    })

    it("asks for the automatic export only once stopped, and not for an aborted session", () => {
      const automatic = cmd("RequestExport", id, { automatic: true })
      expect(decided(at("active"), automatic)).toBeNull()
      expect(decided(at("stopping"), automatic)).toBeNull()
      const aborted = sessionAt("starting")
      aborted.ok(stop(id))
      expect(decided(aborted.state, automatic)).toBeNull()
      expect(decided(twoDisplaysStopped().state, automatic)?.data).toMatchObject({
        video_channel_id: "display:1",
        automatic: true,
      })
    })

    it("refuses a channel the session lacks or that is not video", () => {
      for (const video_channel_id of ["display:9", "mic:default"]) {
        expect(refused(at("stopped"), exportOf(id, video_channel_id))).toMatchObject({
          error_code: "export_channel_not_found",
          field: "video_channel_id",
        })
      }
    })
  })

  describe("CompleteExport and FailExport", () => {
    it("record an export's outcome once, and only after the stop", () => {
      expect(decided(at("stopped"), completed("display:1"))).toEqual({
        type: "ExportCompleted",
        data: { video_channel_id: "display:1", video_id: "m-1", stream_url: "s", player_url: "p" },
      })
      expect(decided(at("exported"), completed("display:1"))).toBeNull()
      expect(decided(at("stopped"), failedExport("display:1"))).toEqual({
        type: "ExportFailed",
        data: {
          video_channel_id: "display:1",
          error: { code: "no_segments", message: "nothing recorded" },
        },
      })
      expect(decided(at("exported"), failedExport("display:1"))).toBeNull()
      // A failed export that leaves another running does not end the session: failing it again is a repeat.
      const twice = twoDisplaysStopped()
      twice.ok(exportOf(id, "display:2"))
      twice.ok(failedExport("display:2"))
      expect(twice.state.value).toBe("stopped")
      expect(decided(twice.state, failedExport("display:2"))).toBeNull()
      for (const command of [completed("display:1"), failedExport("display:1")]) {
        expect(refused(at("stopping"), command)).toMatchObject({
          error_code: "invalid_transition",
          current_status: "stopping",
        })
      }
    })
  })

  describe("FailSession", () => {
    it("fails any session not yet ended, changes nothing once failed, and refuses an ended one", () => {
      for (const status of ["created", "starting", "active", "stopping"] as const) {
        expect(decided(at(status), failSession())).toEqual({
          type: "SessionFailed",
          data: { error: { code: "capture_error", message: "device lost" } },
        })
      }
      expect(decided(at("failed"), failSession())).toBeNull()
      for (const status of ["stopped", "exported"] as const) {
        expect(refused(at(status), failSession())).toMatchObject({
          error_code: "session_ended",
          current_status: status,
        })
      }
    })
  })

  describe("PauseChannels and ResumeChannels", () => {
    it("pause while starting or active, at the time given or now; not before the start", () => {
      expect(decided(at("starting"), cmd("PauseChannels", id, {}))).toEqual({
        type: "ChannelsPaused",
        data: { channel_ids: ["mic:default", "system_audio:default", "display:1"], at_ms: now.getTime() },
      })
      expect(decided(at("starting"), cmd("ResumeChannels", id, {}))).toBeNull()
      for (const type of ["PauseChannels", "ResumeChannels"] as const) {
        expect(refused(at("created"), cmd(type, id, {}))).toMatchObject({
          error_code: "invalid_transition",
          current_status: "created",
        })
      }
    })
  })

  describe("StopRtstream and StartRtstream", () => {
    const stopMic = () => cmd("StopRtstream", id, { rtstream_id: mic })
    const startMic = () => cmd("StartRtstream", id, { rtstream_id: mic })

    it("stop and start an rtstream while the session captures; repeats are no event", () => {
      for (const status of ["active", "stopping"] as const) {
        expect(decided(at(status), stopMic())).toEqual({
          type: "RtstreamStopped",
          data: { rtstream_id: mic },
        })
        expect(decided(at(status), startMic())).toBeNull()
        const s = sessionAt(status)
        s.ok(stopMic())
        expect(decided(s.state, stopMic())).toBeNull()
        expect(decided(s.state, startMic())).toEqual({ type: "RtstreamStarted", data: { rtstream_id: mic } })
      }
    })

    it("once the session ended: a stop changes nothing, a start is refused naming the status", () => {
      for (const status of ["stopped", "exported"] as const) {
        expect(decided(at(status), stopMic())).toBeNull()
        expect(refused(at(status), startMic())).toMatchObject({
          error_code: "invalid_transition",
          current_status: status,
        })
      }
    })

    it("refuses an rtstream the session does not have (none before activation)", () => {
      for (const status of ["created", "starting", "active"] as const) {
        for (const command of [stopMic(), startMic()]) {
          const rtstream = status === "active" ? (`${mic.slice(0, -2)}09` as RtstreamId) : mic
          expect(refused(at(status), { ...command, rtstream_id: rtstream } as SessionCommand)).toMatchObject({
            error_code: "rtstream_not_found",
            field: "rtstream_id",
          })
        }
      }
    })
  })

  describe("FireTimer", () => {
    it("fails a starting session at its start deadline, saying how long it waited", () => {
      const starting = at("starting")
      expect(decided(starting, timer("start", starting.context.start_deadline ?? ""))).toEqual({
        type: "SessionFailed",
        data: { error: { code: "start_timeout", message: "no media arrived within 5 s of start" } },
      })
    })

    it("stops a stopping session at its stop deadline; a stale stop timer changes nothing", () => {
      const stopping = at("stopping")
      expect(decided(stopping, timer("stop", stopping.context.stop_deadline ?? ""))).toEqual({
        type: "SessionStopped",
        data: { reason: "stop_timeout" },
      })
      expect(decided(stopping, timer("stop", "1999-01-01T00:00:00.000Z"))).toBeNull()
      expect(decided(stopping, timer("start", stopping.context.start_deadline ?? ""))).toBeNull()
      expect(decided(at("stopped"), timer("stop", stopping.context.stop_deadline ?? ""))).toBeNull()
    })
  })
})

describe("late media after an automatic stop", () => {
  const graceful = { ...options, lateMediaGraceMs: 60_000 }
  const later = new Date(now.getTime() + 10_000)
  const lateTimer = (deadline: string) => cmd("FireTimer", id, { timer: "late_media", deadline })
  const stoppingFor = (reason: string): Session => {
    const s = sessionAt("active")
    s.ok(cmd("StopSession", id, { reason }))
    return s
  }
  const draftOf = (decision: ReturnType<typeof decide>) => {
    if (Result.isFailure(decision)) throw new Error(decision.failure.message)
    return decision.success
  }

  it("opens a window on a silence or stop-timeout stop (media before the stop request), none on a requested one", () => {
    const window = { media_before: now.toISOString(), late_media_until: "2026-01-01T00:01:10.000Z" }
    const silent = stoppingFor(SILENT_STOP_REASON).state
    expect(draftOf(decide(silent, finish(id), later, graceful))).toEqual({
      type: "SessionStopped",
      data: { reason: SILENT_STOP_REASON, ...window },
    })
    const requested = stoppingFor("requested").state
    expect(
      draftOf(decide(requested, timer("stop", requested.context.stop_deadline ?? ""), later, graceful)),
    ).toEqual({ type: "SessionStopped", data: { reason: "stop_timeout", ...window } })
    // A stop the client asked for and finished exports at once; so does any stop without a grace period.
    expect(draftOf(decide(requested, finish(id), later, graceful))).toEqual({
      type: "SessionStopped",
      data: { reason: "requested" },
    })
    expect(draftOf(decide(silent, finish(id), later, options))).toEqual({
      type: "SessionStopped",
      data: { reason: SILENT_STOP_REASON },
    })
  })

  it("arms the late_media timer, which asks for the automatic export once; any export closes the window", () => {
    const s = stoppingFor(SILENT_STOP_REASON)
    const finishing = finish(id)
    const draft = draftOf(decide(s.state, finishing, now, graceful))
    if (draft === null) throw new Error("no stop")
    const stopped = toEvent(s.state, finishing, draft, now)
    const [state, effects] = applyEvent(s.state, stopped)
    const until = state.context.late_media_until ?? ""
    expect(until).not.toBe("")
    expect(effects).toContainEqual({ type: "scheduleTimer", timer: "late_media", deadline: until })
    expect(draftOf(decide(state, lateTimer("1999-01-01T00:00:00.000Z"), now, graceful))).toBeNull()
    const request = draftOf(decide(state, lateTimer(until), now, graceful))
    expect(request).toMatchObject({
      type: "ExportRequested",
      data: { video_channel_id: "display:1", automatic: true },
    })
    if (request === null) throw new Error("no export request")
    const requested = toEvent(state, lateTimer(until), request, now)
    const [after] = applyEvent(state, requested)
    expect(after.context.late_media_until).toBeNull()
    expect(draftOf(decide(after, lateTimer(until), now, graceful))).toBeNull()
  })
})

describe("toEvent", () => {
  it("wraps a draft as the session's next event, with the command's id and the decision's time", () => {
    const s = sessionAt("active")
    const command = stop(id)
    const draft = decided(s.state, command)
    if (draft === null) throw new Error("no draft")
    const event = toEvent(s.state, command, draft, now)
    expect(event).toEqual({
      ...draft,
      id: expect.stringMatching(/^evt-/),
      session_id: id,
      sequence: 4,
      time: now.toISOString(),
      schema_version: 1,
      command_id: command.command_id,
    })
    expect(toEvent(s.state, command, draft, now).id).not.toBe(event.id)
  })
})
