import { DEFAULT_COLLECTION, LifecycleEvent, newSessionId, rawAssetId, type VideoId } from "@capture/protocol"
import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import { emptyRouting, foldEvents, nextRouting, toLifecycleEvent } from "../src/index.js"
import { cmd, create, exportOf, finish, media, start, stop } from "./commands.js"
import { Session } from "./Session.js"

const id = newSessionId()
const isLifecycleEvent = Schema.is(LifecycleEvent)
const assetIds = {
  "mic:default": rawAssetId("m-1" as VideoId, "mic:default", "audio"),
  "display:1": rawAssetId("m-1" as VideoId, "display:1", "video"),
}

/** The lifecycle events of a history, each mapped with the state right after its event. */
const lifecycleOf = (s: Session) =>
  s.history.flatMap((event, i) => {
    const mapped = toLifecycleEvent(event, foldEvents(s.history.slice(0, i + 1)))
    return mapped === undefined ? [] : [mapped]
  })

describe("toLifecycleEvent", () => {
  it("announces each status once, with the domain event's id and valid data", () => {
    const s = new Session()
    s.ok(create(id))
    s.ok(start(id))
    s.ok(media(id))
    s.ok(stop(id))
    s.ok(finish(id))
    s.ok(exportOf(id))
    s.ok(
      cmd("CompleteExport", id, {
        video_channel_id: "display:1",
        video_id: "m-1" as VideoId,
        stream_url: "s",
        player_url: "p",
        asset_ids: assetIds,
      }),
    )
    const lifecycle = lifecycleOf(s)
    expect(lifecycle.map((e) => e.event)).toEqual([
      "capture_session.created",
      "capture_session.starting",
      "capture_session.active",
      "capture_session.stopping",
      "capture_session.stopped",
      "capture_session.exported",
    ])
    for (const event of lifecycle) expect(isLifecycleEvent(event)).toBe(true)
    expect(lifecycle.map((e) => e.id)).toEqual(
      s.history.filter((e) => e.type !== "ExportRequested").map((e) => e.id),
    )
    expect(lifecycle[2]?.data).toMatchObject({
      rtstreams: expect.arrayContaining([
        { rtstream_id: expect.stringMatching(/^rts-/), name: "mic:default", media_types: ["audio"] },
      ]),
    })
    expect(lifecycle[5]?.data).toEqual({
      exported_video_id: "m-1",
      stream_url: "s",
      player_url: "p",
      video_channel_id: "display:1",
      exported_asset_ids: assetIds,
    })
  })

  it("announces an export completed without asset ids (an older history) without them", () => {
    const s = new Session()
    for (const c of [create(id), start(id), media(id), stop(id), finish(id)]) s.ok(c)
    s.ok(
      cmd("CompleteExport", id, {
        video_channel_id: "display:1",
        video_id: "m-1" as VideoId,
        stream_url: "s",
        player_url: "p",
      }),
    )
    const exported = lifecycleOf(s).at(-1)
    expect(exported?.event).toBe("capture_session.exported")
    expect(exported?.data).not.toHaveProperty("exported_asset_ids")
    expect(isLifecycleEvent(exported)).toBe(true)
  })

  it("announces a failed export only when it fails the session", () => {
    const fail = (channel: string) =>
      cmd("FailExport", id, {
        video_channel_id: channel,
        error: { code: "no_media", message: "nothing recorded" },
      })
    const s = new Session()
    for (const c of [
      create(id),
      start(id, [{ channel_id: "display:1" }]),
      media(id, "display:1"),
      stop(id),
      finish(id),
      exportOf(id),
    ])
      s.ok(c)
    s.ok(fail("display:1"))
    expect(lifecycleOf(s).at(-1)).toMatchObject({
      event: "capture_session.failed",
      data: { error: { code: "no_media" } },
    })
  })
})

describe("nextRouting", () => {
  it("takes the callback from create, lets start replace it, and collects every named connection", () => {
    const s = new Session()
    s.ok(
      cmd("CreateSession", id, {
        collection_id: DEFAULT_COLLECTION,
        end_user_id: "u",
        callback_url: "http://a",
        ws_connection_id: "ws-1",
      }),
    )
    s.ok(
      cmd("StartSession", id, {
        channels: [{ channel_id: "display:1" }],
        callback_url: "http://b",
        ws_connection_id: "ws-2",
      }),
    )
    s.ok(media(id, "display:1"))
    s.ok(stop(id))
    s.ok(finish(id))
    s.ok(cmd("RequestExport", id, { ws_connection_id: "ws-1" }))
    s.ok(cmd("RequestExport", id, { video_channel_id: "display:1", ws_connection_id: "ws-3" }))
    const routing = s.history.reduce(nextRouting, emptyRouting)
    // ws-1 is known already; ws-3 joins the running automatic export, so it gets `exported` too.
    expect(routing).toMatchObject({
      end_user_id: "u",
      callback_url: "http://b",
      ws_connection_ids: ["ws-1", "ws-2", "ws-3"],
    })
    expect(s.history.at(-1)?.data).toMatchObject({ ws_connection_id: "ws-3", joins_running: true })
  })
})
