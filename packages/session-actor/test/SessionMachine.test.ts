import {
  type ChannelInput,
  type ExportedAssetIds,
  newSessionId,
  type RtstreamId,
  rawAssetId,
  type SessionCommand,
  type SessionEvent,
  type VideoId,
} from "@capture/protocol"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  foldEvent,
  foldEvents,
  initialState,
  type SessionState,
  toCaptureSession,
  toEvent,
  transitionWithXState,
  UnappliableEvent,
} from "../src/index.js"
import { cmd, create, exportOf, finish, media, start, stop } from "./commands.js"
import { now, Session } from "./Session.js"

const id = newSessionId()
const completed = (
  video_channel_id: string | null,
  video_id = "m-1" as VideoId,
  asset_ids?: ExportedAssetIds,
) =>
  cmd("CompleteExport", id, {
    video_channel_id,
    video_id,
    stream_url: "s",
    player_url: "p",
    ...(asset_ids === undefined ? {} : { asset_ids }),
  })
/** The asset ids the muxer names for an export of `channels` under `video_id`. */
const assetsOf = (video_id: VideoId, channels: ReadonlyArray<string>): ExportedAssetIds =>
  Object.fromEntries(
    channels.map((c) => [c, rawAssetId(video_id, c, c.startsWith("display") ? "video" : "audio")]),
  )
const exportsOf = (state: SessionState) =>
  state.context.exports.map((e) => [e.video_channel_id, e.export_status])
const viewOf = (state: SessionState) => {
  const view = toCaptureSession(state)
  if (view === null) throw new Error("no session")
  return view
}
const failedExport = (video_channel_id: string | null) =>
  cmd("FailExport", id, { video_channel_id, error: { code: "no_segments", message: "nothing recorded" } })

const recorded = (
  channels: ReadonlyArray<ChannelInput> = [
    { channel_id: "mic:default" },
    { channel_id: "display:1" },
    { channel_id: "display:2" },
  ],
) => {
  const s = new Session()
  s.ok(create(id))
  s.ok(start(id, channels))
  s.ok(media(id))
  s.ok(stop(id))
  s.ok(finish(id))
  return s
}

describe("SessionMachine lifecycle", () => {
  it("goes created → starting → active → stopping → stopped → exported", () => {
    const s = recorded()
    expect(s.history.map((e) => e.type)).toEqual([
      "SessionCreated",
      "SessionStarting",
      "SessionActivated",
      "SessionStopping",
      "SessionStopped",
    ])
    expect(s.state.value).toBe("stopped")
    // The stop starts the automatic export: asking for it again only reports its status.
    expect(s.state.context.exports).toMatchObject([
      { video_channel_id: "display:1", export_status: "exporting" },
    ])
    expect(s.ok(exportOf(id))).toBeNull()
    s.ok(completed("display:1"))
    expect(s.state.value).toBe("exported")
    expect(s.history.map((e) => e.sequence)).toEqual([1, 2, 3, 4, 5, 6])
  })

  it("arms the expiry on created, the start timer on starting, the stop timer on stopping and the late-media timer on stopped, cancelling each on exit", () => {
    const s = recorded()
    expect(s.effects).toEqual([
      { type: "scheduleTimer", timer: "expire", deadline: "2026-01-02T00:00:00.000Z" },
      { type: "cancelTimer", timer: "expire" },
      { type: "scheduleTimer", timer: "start", deadline: "2026-01-01T00:00:05.000Z" },
      { type: "cancelTimer", timer: "start" },
      { type: "scheduleTimer", timer: "stop", deadline: "2026-01-01T00:00:03.000Z" },
      { type: "cancelTimer", timer: "stop" },
      // A requested stop opens no late-media window: no deadline, so the host arms nothing.
      { type: "scheduleTimer", timer: "late_media", deadline: "" },
    ])
  })

  it("resolves channel defaults: name, type from the kind, store true, first display primary", () => {
    const s = new Session()
    s.ok(create(id))
    s.ok(start(id, [{ channel_id: "mic:default", channel_name: "Mic" }, { channel_id: "display:2" }]))
    expect(s.state.context.channels).toEqual([
      { channel_id: "mic:default", name: "Mic", type: "audio", store: true, is_primary: false },
      { channel_id: "display:2", name: "display:2", type: "video", store: true, is_primary: true },
    ])
    expect(s.state.context.primary_video_channel_id).toBe("display:2")
  })
})

describe("SessionMachine edge cases", () => {
  it("stop while starting ends the session without export (aborted)", () => {
    const s = new Session()
    s.ok(create(id))
    s.ok(start(id))
    expect(s.ok(stop(id))?.type).toBe("SessionStopped")
    expect(s.state.context.stop_reason).toBe("aborted")
    expect(s.refused(exportOf(id)).error_code).toBe("no_media")
  })

  it("stop on a stopped, stopping or exported session is an idempotent success with no event", () => {
    const s = recorded()
    const before = s.history.length
    expect(s.ok(stop(id))).toBeNull()
    s.ok(completed("display:1"))
    expect(s.ok(stop(id))).toBeNull()
    expect(s.history.length).toBe(before + 1)
  })

  it("refuses a start with no channels, duplicate ids, two primaries, or a bad primary", () => {
    const fresh = () => {
      const s = new Session()
      s.ok(create(id))
      return s
    }
    expect(fresh().refused(start(id, []))).toMatchObject({ error_code: "no_channels", field: "channels" })
    expect(
      fresh().refused(start(id, [{ channel_id: "mic:default" }, { channel_id: "mic:default" }])),
    ).toMatchObject({ error_code: "duplicate_channel_id", field: "channels[1].channel_id" })
    expect(
      fresh().refused(
        start(id, [
          { channel_id: "display:1", is_primary: true },
          { channel_id: "display:2", is_primary: true },
        ]),
      ),
    ).toMatchObject({ error_code: "multiple_primary_channels", field: "channels[1].is_primary" })
    expect(
      fresh().refused(
        cmd("StartSession", id, {
          channels: [{ channel_id: "mic:default" }],
          primary_video_channel_id: "display:1",
        }),
      ),
    ).toMatchObject({ error_code: "primary_channel_not_found", field: "primary_video_channel_id" })
    expect(fresh().refused(start(id, [{ channel_id: "mic:default", type: "video" }]))).toMatchObject({
      error_code: "channel_type_mismatch",
      field: "channels[0].type",
    })
  })

  it("refuses a second start with 409 naming the current status", () => {
    const s = new Session()
    s.ok(create(id))
    s.ok(start(id))
    expect(s.refused(start(id))).toMatchObject({
      error_code: "invalid_transition",
      current_status: "starting",
    })
  })

  it("refuses export when no channel is stored, and of a store: false display", () => {
    const s = recorded([
      { channel_id: "mic:default", store: false },
      { channel_id: "display:1", store: false },
    ])
    expect(s.refused(exportOf(id)).error_code).toBe("no_stored_channel")
    const t = recorded([
      { channel_id: "mic:default" },
      { channel_id: "display:1" },
      { channel_id: "display:2", store: false },
    ])
    expect(t.refused(exportOf(id, "display:2"))).toMatchObject({ error_code: "export_channel_not_stored" })
  })

  it("refuses export before the session has stopped", () => {
    const s = new Session()
    s.ok(create(id))
    s.ok(start(id))
    s.ok(media(id))
    expect(s.refused(exportOf(id))).toMatchObject({
      error_code: "invalid_transition",
      current_status: "active",
    })
  })

  it("allows exporting a second display after the first, tracking status per channel", () => {
    const s = recorded()
    s.ok(exportOf(id))
    s.ok(completed("display:1", "m-1" as VideoId))
    expect(s.ok(exportOf(id, "display:1"))).toBeNull()
    s.ok(exportOf(id, "display:2"))
    s.ok(failedExport("display:2"))
    expect(s.state.value).toBe("exported")
    expect(s.state.context.exports.map((e) => [e.video_channel_id, e.export_status])).toEqual([
      ["display:1", "exported"],
      ["display:2", "failed"],
    ])
    // A failed export may be requested again.
    expect(s.ok(exportOf(id, "display:2"))?.type).toBe("ExportRequested")
  })

  it("fails the session when its only export fails, and records exported exactly once", () => {
    const s = recorded()
    s.ok(exportOf(id))
    s.ok(failedExport("display:1"))
    expect(s.state.value).toBe("failed")
    const t = recorded()
    t.ok(completed("display:1"))
    expect(t.ok(completed("display:1"))).toBeNull()
    expect(t.history.filter((e) => e.type === "ExportCompleted")).toHaveLength(1)
  })

  it("fails from any non-final state, and failed is final", () => {
    for (const steps of [[create(id)], [create(id), start(id)], [create(id), start(id), media(id)]]) {
      const s = new Session()
      for (const step of steps) s.ok(step)
      s.ok(cmd("FailSession", id, { error: { code: "capture_error", message: "device lost" } }))
      expect(s.state.value).toBe("failed")
      expect(s.refused(start(id)).current_status).toBe("failed")
      expect(s.ok(stop(id))).toBeNull()
    }
  })

  it("fails a stopping session; a failed one again is a no-op; an ended one refuses with session_ended", () => {
    const failure = { error: { code: "capture_failed", message: "every stored channel gave up" } }
    const s = new Session()
    for (const step of [create(id), start(id), media(id), stop(id)]) s.ok(step)
    expect(s.ok(cmd("FailSession", id, failure))?.data).toEqual(failure)
    expect(s.state.value).toBe("failed")
    expect(s.ok(cmd("FailSession", id, { error: { code: "other", message: "later" } }))).toBeNull()
    expect(s.state.context.error).toEqual(failure.error)

    const t = recorded()
    expect(t.refused(cmd("FailSession", id, failure))).toMatchObject({
      error_code: "session_ended",
      current_status: "stopped",
    })
    t.ok(completed("display:1"))
    expect(t.refused(cmd("FailSession", id, failure))).toMatchObject({
      error_code: "session_ended",
      current_status: "exported",
    })
    expect(t.state.value).toBe("exported")
  })

  it("a due start timer fails a starting session; a stale one changes nothing", () => {
    const s = new Session()
    s.ok(create(id))
    s.ok(start(id))
    const deadline = s.state.context.start_deadline ?? ""
    expect(s.ok(cmd("FireTimer", id, { timer: "start", deadline: "1999-01-01T00:00:00.000Z" }))).toBeNull()
    s.ok(cmd("FireTimer", id, { timer: "start", deadline }))
    expect(s.state.value).toBe("failed")
    expect(s.state.context.error?.code).toBe("start_timeout")
    const t = recorded()
    expect(t.ok(cmd("FireTimer", id, { timer: "start", deadline }))).toBeNull()
  })

  it("a due stop timer forces a stopping session to stopped", () => {
    const s = new Session()
    s.ok(create(id))
    s.ok(start(id))
    s.ok(media(id))
    s.ok(stop(id))
    s.ok(cmd("FireTimer", id, { timer: "stop", deadline: s.state.context.stop_deadline ?? "" }))
    expect(s.state.value).toBe("stopped")
    expect(s.state.context.stop_reason).toBe("stop_timeout")
  })

  it("unknown sessions and a repeated create are told apart from a retried create", () => {
    const s = new Session()
    expect(s.refused(start(id)).error_code).toBe("session_not_found")
    const first = create(id)
    s.ok(first)
    expect(s.ok(first)).toBeNull()
    expect(s.refused(create(id)).error_code).toBe("session_already_exists")
  })
})

describe("the automatic export", () => {
  it("shows the primary display exporting from the stop until it completes", () => {
    const s = new Session()
    s.ok(create(id))
    s.ok(start(id, [{ channel_id: "mic:default" }, { channel_id: "display:1" }]))
    s.ok(media(id))
    s.ok(stop(id))
    expect(viewOf(s.state)).toMatchObject({ status: "stopping", export_status: null, exports: [] })
    s.ok(finish(id))
    expect(viewOf(s.state)).toMatchObject({
      status: "stopped",
      export_status: "exporting",
      exported_video_id: null,
      exports: [{ video_channel_id: "display:1", export_status: "exporting", video_id: null }],
    })
    s.ok(completed("display:1", "m-7" as VideoId))
    expect(viewOf(s.state)).toMatchObject({
      status: "exported",
      export_status: "exported",
      exported_video_id: "m-7",
    })
  })

  it("also when the stop timer ends the stop", () => {
    const s = new Session()
    s.ok(create(id))
    s.ok(start(id))
    s.ok(media(id))
    s.ok(stop(id))
    s.ok(cmd("FireTimer", id, { timer: "stop", deadline: s.state.context.stop_deadline ?? "" }))
    expect(s.state.context.stop_reason).toBe("stop_timeout")
    expect(exportsOf(s.state)).toEqual([["display:1", "exporting"]])
  })

  it("is audio only without a stored display, and the first stored display when the primary is not stored", () => {
    const audio = recorded([{ channel_id: "mic:default" }, { channel_id: "display:1", store: false }])
    expect(exportsOf(audio.state)).toEqual([[null, "exporting"]])
    expect(viewOf(audio.state).export_status).toBe("exporting")
    const second = recorded([
      { channel_id: "display:1", store: false },
      { channel_id: "display:2" },
      { channel_id: "mic:default" },
    ])
    expect(second.state.context.primary_video_channel_id).toBe("display:1")
    expect(exportsOf(second.state)).toEqual([["display:2", "exporting"]])
    expect(viewOf(second.state).export_status).toBe("exporting")
    second.ok(completed("display:2", "m-2" as VideoId))
    expect(viewOf(second.state)).toMatchObject({ export_status: "exported", exported_video_id: "m-2" })
  })

  it("does not run for an aborted stop, nor when no channel is stored", () => {
    const aborted = new Session()
    aborted.ok(create(id))
    aborted.ok(start(id))
    aborted.ok(stop(id))
    expect(aborted.state.context.stop_reason).toBe("aborted")
    expect(viewOf(aborted.state)).toMatchObject({ export_status: null, exports: [] })
    const unstored = recorded([
      { channel_id: "mic:default", store: false },
      { channel_id: "display:1", store: false },
    ])
    expect(viewOf(unstored.state)).toMatchObject({ status: "stopped", export_status: null, exports: [] })
  })

  it("keeps export requests idempotent: the running channel reports, another display is requested", () => {
    const s = recorded()
    expect(s.ok(exportOf(id))).toBeNull()
    expect(s.ok(exportOf(id, "display:1"))).toBeNull()
    expect(s.ok(exportOf(id, "display:2"))?.type).toBe("ExportRequested")
    expect(s.ok(exportOf(id, "display:2"))).toBeNull()
    expect(exportsOf(s.state)).toEqual([
      ["display:1", "exporting"],
      ["display:2", "exporting"],
    ])
    // A failed automatic export leaves the session to the other one, and may be asked for again.
    s.ok(failedExport("display:1"))
    expect(s.state.value).toBe("stopped")
    expect(s.ok(exportOf(id))?.type).toBe("ExportRequested")
  })
})

describe("exported asset ids", () => {
  const channels = ["mic:default", "display:1", "display:2"]

  it("are null on every rtstream until an export names them, then that export's", () => {
    const s = recorded()
    expect(viewOf(s.state).rtstreams.map((r) => r.exported_asset_id)).toEqual([null, null, null])
    const assets = assetsOf("m-1" as VideoId, ["mic:default", "display:1"])
    s.ok(completed("display:1", "m-1" as VideoId, assets))
    expect(viewOf(s.state).rtstreams.map((r) => [r.name, r.channel_id, r.exported_asset_id])).toEqual([
      ["mic:default", "mic", assets["mic:default"]],
      ["display:1", "screen", assets["display:1"]],
      ["display:2", "screen", null],
    ])
  })

  it("keep the first completed export's ids; a later export only fills channels that had none", () => {
    const s = recorded()
    const first = assetsOf("m-1" as VideoId, ["mic:default", "display:1"])
    s.ok(completed("display:1", "m-1" as VideoId, first))
    s.ok(exportOf(id, "display:2"))
    const second = assetsOf("m-2" as VideoId, channels)
    s.ok(completed("display:2", "m-2" as VideoId, second))
    expect(s.state.context.exported_asset_ids).toEqual({ ...first, "display:2": second["display:2"] })
  })

  it("come from a later export when the first one failed", () => {
    const s = recorded()
    s.ok(exportOf(id, "display:2"))
    s.ok(failedExport("display:1"))
    const second = assetsOf("m-2" as VideoId, channels)
    s.ok(completed("display:2", "m-2" as VideoId, second))
    expect(viewOf(s.state).rtstreams.map((r) => r.exported_asset_id)).toEqual(channels.map((c) => second[c]))
  })

  it("stay null for a completion stored without them (an older history), which still folds", () => {
    const s = recorded()
    // Stored before the stop started the export and before completions named assets: the client
    // asked for the export, and the completion carried no asset ids.
    const requested = toEvent(
      s.state,
      exportOf(id),
      { type: "ExportRequested", data: { video_channel_id: "display:1" } },
      now,
    )
    const afterRequest = foldEvent(s.state, requested)
    const done = toEvent(
      afterRequest,
      completed("display:1"),
      {
        type: "ExportCompleted",
        data: { video_channel_id: "display:1", video_id: "m-1" as VideoId, stream_url: "s", player_url: "p" },
      },
      now,
    )
    const history = [...s.history, requested, done]
    const folded = foldEvents(history)
    let reference = initialState
    for (const event of history) reference = transitionWithXState(reference, event)[0]
    expect(folded).toEqual(reference)
    expect(folded.value).toBe("exported")
    expect(viewOf(folded)).toMatchObject({ export_status: "exported", exported_video_id: "m-1" })
    expect(viewOf(folded).rtstreams.map((r) => r.exported_asset_id)).toEqual([null, null, null])
  })
})

describe("rtstreams", () => {
  const rtstreamOf = (s: Session, name: string) => {
    const found = s.state.context.rtstreams.find((r) => r.name === name)
    if (found === undefined) throw new Error(`no rtstream for ${name}`)
    return found.rtstream_id
  }
  const active = () => {
    const s = new Session()
    s.ok(create(id))
    s.ok(
      start(id, [
        { channel_id: "mic:default" },
        { channel_id: "display:1" },
        { channel_id: "system_audio:default" },
      ]),
    )
    s.ok(media(id))
    return s
  }

  it("are made on activation, one per channel: the category in channel_id, the channel in name, ids from the session", () => {
    const s = active()
    const activated = s.history.at(-1)
    expect(activated?.type).toBe("SessionActivated")
    expect(activated?.data).toEqual({
      rtstreams: [
        {
          rtstream_id: `rts-${id.slice(4)}-00`,
          name: "mic:default",
          channel_id: "mic",
          media_types: ["audio"],
        },
        {
          rtstream_id: `rts-${id.slice(4)}-01`,
          name: "display:1",
          channel_id: "screen",
          media_types: ["video"],
        },
        {
          rtstream_id: `rts-${id.slice(4)}-02`,
          name: "system_audio:default",
          channel_id: "system_audio",
          media_types: ["audio"],
        },
      ],
    })
    expect(viewOf(s.state).rtstreams.map((r) => [r.channel_id, r.status])).toEqual([
      ["mic", "connected"],
      ["screen", "connected"],
      ["system_audio", "connected"],
    ])
  })

  it("fold from a history stored before categories (the channel id in channel_id too) with their categories and assets", () => {
    const s = recorded()
    const index = s.history.findIndex((e) => e.type === "SessionActivated")
    const old = s.history[index] as SessionEvent & { type: "SessionActivated" }
    const legacy = {
      ...old,
      data: {
        rtstreams: old.data.rtstreams.map((r, i) => ({
          ...r,
          rtstream_id: `rts-01JC00000000000000000000${i}` as RtstreamId,
          channel_id: r.name,
        })),
      },
    } as unknown as SessionEvent
    const history = s.history.map((e, i) => (i === index ? legacy : e))
    const assets = assetsOf("m-1" as VideoId, ["mic:default", "display:1"])
    const done = toEvent(
      s.state,
      completed("display:1", "m-1" as VideoId, assets),
      {
        type: "ExportCompleted",
        data: {
          video_channel_id: "display:1",
          video_id: "m-1" as VideoId,
          stream_url: "s",
          player_url: "p",
          asset_ids: assets,
        },
      },
      now,
    )
    const folded = foldEvents([...history, done])
    let reference = initialState
    for (const event of [...history, done]) reference = transitionWithXState(reference, event)[0]
    expect(folded).toEqual(reference)
    expect(viewOf(folded).rtstreams.map((r) => [r.name, r.channel_id, r.exported_asset_id])).toEqual([
      ["mic:default", "mic", assets["mic:default"]],
      ["display:1", "screen", assets["display:1"]],
      ["display:2", "screen", null],
    ])
  })

  it("stop and start while the session captures, as events; repeats change nothing", () => {
    const s = active()
    const mic = rtstreamOf(s, "mic:default")
    expect(s.ok(cmd("StopRtstream", id, { rtstream_id: mic }))).toMatchObject({
      type: "RtstreamStopped",
      data: { rtstream_id: mic },
    })
    expect(s.ok(cmd("StopRtstream", id, { rtstream_id: mic }))).toBeNull()
    expect(viewOf(s.state).rtstreams.map((r) => [r.name, r.status])).toEqual([
      ["mic:default", "stopped"],
      ["display:1", "connected"],
      ["system_audio:default", "connected"],
    ])
    s.ok(stop(id))
    expect(s.state.value).toBe("stopping")
    expect(s.ok(cmd("StartRtstream", id, { rtstream_id: mic }))?.type).toBe("RtstreamStarted")
    expect(s.ok(cmd("StartRtstream", id, { rtstream_id: mic }))).toBeNull()
    expect(viewOf(s.state).rtstreams.every((r) => r.status === "connected")).toBe(true)
    s.ok(finish(id))
    // Once the session has ended, every rtstream is stopped: a stop is a repeat, a start refused.
    expect(viewOf(s.state).rtstreams.every((r) => r.status === "stopped")).toBe(true)
    expect(s.ok(cmd("StopRtstream", id, { rtstream_id: mic }))).toBeNull()
    expect(s.refused(cmd("StartRtstream", id, { rtstream_id: mic }))).toMatchObject({
      error_code: "invalid_transition",
      current_status: "stopped",
    })
    expect(foldEvents(s.history)).toEqual(s.state)
  })

  it("refuses an rtstream the session does not have, naming it", () => {
    const s = active()
    for (const type of ["StopRtstream", "StartRtstream"] as const) {
      expect(s.refused(cmd(type, id, { rtstream_id: `rts-${id.slice(4)}-07` as RtstreamId }))).toMatchObject({
        error_code: "rtstream_not_found",
        field: "rtstream_id",
      })
    }
    const before = new Session()
    before.ok(create(id))
    expect(
      before.refused(cmd("StopRtstream", id, { rtstream_id: `rts-${id.slice(4)}-00` as RtstreamId }))
        .error_code,
    ).toBe("rtstream_not_found")
  })
})

describe("folding", () => {
  it("rejects an event out of sequence or not allowed in the state", () => {
    const s = recorded()
    const [first] = s.history
    if (first === undefined) throw new Error("no history")
    expect(() => foldEvent(s.state, first)).toThrow(UnappliableEvent)
    expect(() =>
      foldEvent(initialState, { ...first, type: "SessionStopped", data: { reason: "x" } } as SessionEvent),
    ).toThrow(UnappliableEvent)
  })

  it("the compiled machine equals XState's transition (state and effects) on generated histories", () => {
    const channels3 = ["display:1", "display:2", "mic:default"]
    const sessionCommands = fc.constantFrom<(s: Session) => SessionCommand>(
      () => start(id),
      () =>
        start(id, [{ channel_id: "display:1" }, { channel_id: "display:2" }, { channel_id: "mic:default" }]),
      () => media(id),
      () => stop(id),
      () => finish(id),
      () => exportOf(id),
      () => exportOf(id, "display:2"),
      () => completed("display:1"),
      () => completed("display:2"),
      () => completed("display:1", "m-1" as VideoId, assetsOf("m-1" as VideoId, channels3)),
      () => completed("display:2", "m-2" as VideoId, assetsOf("m-2" as VideoId, channels3)),
      () => completed(null, "m-3" as VideoId, assetsOf("m-3" as VideoId, ["mic:default"])),
      () => exportOf(id, "display:1"),
      () => failedExport("display:1"),
      () => failedExport("display:2"),
      () => cmd("FailSession", id, { error: { code: "x", message: "y" } }),
      (s) =>
        cmd("StopRtstream", id, {
          rtstream_id: s.state.context.rtstreams[0]?.rtstream_id ?? ("rts-x-00" as RtstreamId),
        }),
      (s) =>
        cmd("StartRtstream", id, {
          rtstream_id: s.state.context.rtstreams[0]?.rtstream_id ?? ("rts-x-00" as RtstreamId),
        }),
      (s) =>
        cmd("StopRtstream", id, {
          rtstream_id: s.state.context.rtstreams[1]?.rtstream_id ?? ("rts-x-01" as RtstreamId),
        }),
      (s) => cmd("FireTimer", id, { timer: "start", deadline: s.state.context.start_deadline ?? "" }),
      (s) => cmd("FireTimer", id, { timer: "stop", deadline: s.state.context.stop_deadline ?? "" }),
    )
    fc.assert(
      fc.property(fc.array(sessionCommands, { maxLength: 30 }), (steps) => {
        const s = new Session()
        s.ok(create(id))
        for (const step of steps) s.run(step(s))
        expect(foldEvents(s.history)).toEqual(s.state)
        let reference = initialState
        const referenceEffects: Array<unknown> = []
        for (const event of s.history) {
          const [next, effects] = transitionWithXState(reference, event)
          reference = next
          referenceEffects.push(...effects)
        }
        expect(reference).toEqual(s.state)
        expect(referenceEffects).toEqual(s.effects)
      }),
      { numRuns: 300 },
    )
  })
})

describe("SessionMachine: expiry, pauses and export requests", () => {
  const sid = newSessionId()
  const fire = (timer: "expire" | "start" | "stop", deadline: string) =>
    cmd("FireTimer", sid, { timer, deadline })

  it("fails a created session at its expiry deadline (expired), and ignores a stale expiry once started", () => {
    const s = new Session()
    const created = s.ok(create(sid))
    const deadline = created?.type === "SessionCreated" ? (created.data.expire_deadline ?? "") : ""
    expect(deadline).toBe("2026-01-02T00:00:00.000Z")
    expect(s.state.context.expire_deadline).toBe(deadline)
    expect(s.ok(fire("expire", "2026-01-01T00:00:01.000Z"))).toBeNull()
    s.ok(fire("expire", deadline))
    expect(s.state.value).toBe("failed")
    expect(s.state.context.error).toMatchObject({ code: "expired" })

    const t = new Session()
    t.ok(create(sid))
    t.ok(start(sid))
    expect(t.state.context.expire_deadline).toBeNull()
    expect(t.ok(fire("expire", deadline))).toBeNull()
    expect(t.state.value).toBe("starting")
  })

  it("pauses and resumes only what changes, shows paused channels, and refuses unknown channels", () => {
    const s = new Session()
    s.ok(create(sid))
    s.ok(start(sid, [{ channel_id: "mic:default" }, { channel_id: "display:1" }]))
    s.ok(media(sid))
    const paused = s.ok(cmd("PauseChannels", sid, { channel_ids: ["mic:default" as never], at_ms: 1_000 }))
    expect(paused?.data).toEqual({ channel_ids: ["mic:default"], at_ms: 1_000 })
    expect(s.ok(cmd("PauseChannels", sid, { channel_ids: ["mic:default" as never] }))).toBeNull()
    const all = s.ok(cmd("PauseChannels", sid, { at_ms: 2_000 }))
    expect(all?.data).toEqual({ channel_ids: ["display:1"], at_ms: 2_000 })
    expect(viewOf(s.state).paused_channel_ids).toEqual(["mic:default", "display:1"])
    s.ok(cmd("ResumeChannels", sid, { at_ms: 5_000 }))
    expect(viewOf(s.state).paused_channel_ids).toEqual([])
    expect(s.refused(cmd("PauseChannels", sid, { channel_ids: ["display:9" as never] }))).toMatchObject({
      error_code: "channel_not_found",
      field: "channel_ids[0]",
    })
    s.ok(stop(sid))
    expect(s.refused(cmd("ResumeChannels", sid, {})).error_code).toBe("invalid_transition")
  })

  it("asks for the automatic export once, with the paused spans, and names each try's attempt", () => {
    const s = new Session()
    s.ok(create(sid))
    s.ok(start(sid, [{ channel_id: "mic:default" }, { channel_id: "display:1" }]))
    s.ok(media(sid))
    s.ok(cmd("PauseChannels", sid, { at_ms: 1_000 }))
    s.ok(cmd("ResumeChannels", sid, { at_ms: 4_000 }))
    s.ok(stop(sid))
    s.ok(finish(sid))
    const automatic = cmd("RequestExport", sid, { automatic: true })
    expect(s.ok(automatic)?.data).toEqual({
      video_channel_id: "display:1",
      automatic: true,
      attempt: 0,
      paused_spans: [{ start_ms: 1_000, end_ms: 4_000 }],
    })
    expect(s.ok(cmd("RequestExport", sid, { automatic: true }))).toBeNull()
    // A failed try counts: the answer to it afterwards is stale, the next try is attempt 1.
    s.ok(
      cmd("FailExport", sid, {
        video_channel_id: "display:1",
        attempt: 0,
        error: { code: "x", message: "x" },
      }),
    )
    expect(s.state.value).toBe("failed")
  })

  it("lets a new WebSocket join a running export, and ignores answers to an earlier try", () => {
    const s = new Session()
    s.ok(create(sid))
    s.ok(
      start(sid, [{ channel_id: "mic:default" }, { channel_id: "display:1" }, { channel_id: "display:2" }]),
    )
    s.ok(media(sid))
    s.ok(stop(sid))
    s.ok(finish(sid))
    s.ok(cmd("RequestExport", sid, { automatic: true }))
    const joined = s.ok(cmd("RequestExport", sid, { ws_connection_id: "ws-9" }))
    expect(joined?.data).toEqual({
      video_channel_id: "display:1",
      ws_connection_id: "ws-9",
      joins_running: true,
    })
    expect(s.ok(cmd("RequestExport", sid, { ws_connection_id: "ws-9" }))).toBeNull()

    s.ok(exportOf(sid, "display:2"))
    s.ok(cmd("FailExport", sid, { video_channel_id: "display:2", error: { code: "x", message: "x" } }))
    const retry = s.ok(exportOf(sid, "display:2"))
    expect(retry?.data).toMatchObject({ video_channel_id: "display:2", attempt: 1 })
    const stale = cmd("FailExport", sid, {
      video_channel_id: "display:2",
      attempt: 0,
      error: { code: "late", message: "an answer to the first try" },
    })
    expect(s.ok(stale)).toBeNull()
    expect(exportsOf(s.state)).toContainEqual(["display:2", "exporting"])
    const done = cmd("CompleteExport", sid, {
      video_channel_id: "display:2",
      attempt: 1,
      video_id: "m-2" as VideoId,
      stream_url: "s",
      player_url: "p",
    })
    expect(s.ok(done)?.type).toBe("ExportCompleted")
  })
})
