import {
  CaptureSession,
  DEFAULT_COLLECTION,
  newEventId,
  newSessionId,
  rawAssetId,
  rtstreamCategoryOf,
  type SessionId,
  type VideoId,
} from "@capture/protocol"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Result, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  rebuildProjections,
  SessionReadModel,
  type SessionRuntime,
  startSessionRuntime,
} from "../src/index.js"
import { cmd, finish, media, start, stop } from "./commands.js"
import { waitFor } from "./poll.js"

let server: NatsServerHandle
let nc: NatsConnection
let runtime: SessionRuntime
const logs: Array<string> = []

beforeAll(async () => {
  server = await startNatsServer()
  nc = await connect({ servers: server.url })
  runtime = await startSessionRuntime(nc, { workers: true, log: (message) => logs.push(message) })
})
afterAll(async () => {
  await runtime?.stop()
  await nc?.close()
  await server?.stop()
})

const ok = async (command: ReturnType<typeof cmd>) => {
  const outcome = await runtime.host.execute(command)
  if (Result.isFailure(outcome)) throw new Error(outcome.failure.message)
}

describe("SessionReadModel", () => {
  const ids: Array<SessionId> = []

  beforeAll(async () => {
    // 12 sessions: users u0..u2, collections default / c-other, some started, some stopped.
    for (let i = 0; i < 12; i++) {
      const id = newSessionId(Date.now() + i)
      ids.push(id)
      await ok(
        cmd("CreateSession", id, {
          collection_id: i % 4 === 3 ? ("c-other" as typeof DEFAULT_COLLECTION) : DEFAULT_COLLECTION,
          end_user_id: `u${i % 3}`,
        }),
      )
      if (i % 2 === 0) await ok(start(id))
      if (i % 4 === 0) {
        await ok(media(id))
        await ok(stop(id))
      }
    }
    // The projector is asynchronous: wait for it to reach the last writes.
    await waitFor(
      () => runtime.readModel.get(ids.at(-1) ?? ""),
      (record) => record !== undefined,
    )
    await waitFor(
      async () => (await runtime.readModel.get(ids[8] ?? ""))?.session.status,
      (status) => status === "stopping",
    )
  })

  it("serves a session's view with every wire field", async () => {
    const record = await runtime.readModel.get(ids[0] ?? "")
    expect(record?.session).toMatchObject({
      id: ids[0],
      session_id: ids[0],
      collection_id: "default",
      end_user_id: "u0",
      status: "stopping",
      primary_video_channel_id: "display:1",
      export_status: null,
    })
    expect(record?.session.rtstreams.map((r) => [r.name, r.exported_asset_id])).toEqual([
      ["mic:default", null],
      ["system_audio:default", null],
      ["display:1", null],
    ])
    // The fields VideoDB's SDK reads into an RTStream; made when the first media arrived.
    const activated = (await runtime.host.load(ids[0] ?? "")).state.context.activated_at
    expect(activated).not.toBeNull()
    for (const rtstream of record?.session.rtstreams ?? []) {
      expect(rtstream).toMatchObject({
        channel_id: rtstreamCategoryOf(rtstream.name),
        collection_id: "default",
        status: "connected",
        created_at: activated,
      })
    }
    expect(Schema.is(CaptureSession)(record?.session)).toBe(true)
  })

  it("lists newest first with filters and cursor pagination", async () => {
    const all = await runtime.readModel.list({ limit: 100 })
    expect(all.sessions.map((s) => s.id)).toEqual([...ids].reverse())
    const starting = await runtime.readModel.list({ status: "starting" })
    expect(starting.sessions.map((s) => s.id).sort()).toEqual(ids.filter((_, i) => i % 4 === 2).sort())
    const user = await runtime.readModel.list({ end_user_id: "u1", collection_id: "default" })
    expect(user.sessions.map((s) => s.id).sort()).toEqual(
      ids.filter((_, i) => i % 3 === 1 && i % 4 !== 3).sort(),
    )
    const pages: Array<string> = []
    let cursor: string | undefined
    for (let page = 0; page < 10; page++) {
      const result = await runtime.readModel.list({ limit: 5, ...(cursor === undefined ? {} : { cursor }) })
      pages.push(...result.sessions.map((s) => s.id))
      if (result.next_page === null) break
      cursor = result.next_page
    }
    expect(pages).toEqual([...ids].reverse())
  })

  it("lists by the index: a filter matching nothing reads no view and walks no view key", async () => {
    const reads = { get: 0, keys: 0 }
    const sessions = runtime.topology.sessions
    const counted = new Proxy(sessions, {
      get: (target, name, receiver) => {
        if (name === "get") reads.get++
        if (name === "keys") reads.keys++
        const value = Reflect.get(target, name, receiver)
        return typeof value === "function" ? value.bind(target) : value
      },
    })
    const readModel = new SessionReadModel({ ...runtime.topology, sessions: counted })
    expect((await readModel.list({ end_user_id: "nobody" })).sessions).toEqual([])
    expect((await readModel.list({ status: "exported", collection_id: "c-other" })).sessions).toEqual([])
    expect(reads).toEqual({ get: 0, keys: 0 })
    // One index key per session, whatever statuses it went through.
    const indexKeys: Array<string> = []
    for await (const key of await runtime.topology.sessionIndex.keys("*.*.*.*.*")) indexKeys.push(key)
    for (const id of ids) expect(indexKeys.filter((key) => key.endsWith(`.${id}`))).toHaveLength(1)
  })

  it("indexes the views stored before the index existed, on the first list", async () => {
    for await (const key of await runtime.topology.sessionIndex.keys()) {
      await runtime.topology.sessionIndex.purge(key)
    }
    const readModel = new SessionReadModel(runtime.topology)
    const all = await readModel.list({ limit: 100 })
    expect(all.sessions.map((s) => s.id).slice(-ids.length)).toEqual([...ids].reverse())
    expect((await readModel.list({ status: "starting" })).sessions.map((s) => s.id).sort()).toEqual(
      ids.filter((_, i) => i % 4 === 2).sort(),
    )
  })

  it("rebuilds from the stream to the same views", async () => {
    const before = await runtime.readModel.list({ limit: 100 })
    await rebuildProjections(
      runtime.host,
      runtime.readModel,
      runtime.timers,
      await runtime.events.sessionIds(),
    )
    const after = await runtime.readModel.list({ limit: 100 })
    expect(after).toEqual(before)
  })

  it("skips a session whose history does not fold and keeps projecting the others", async () => {
    const broken = newSessionId()
    await ok(cmd("CreateSession", broken, { collection_id: DEFAULT_COLLECTION, end_user_id: "u9" }))
    const js = jetstream(nc)
    const subject = runtime.topology.eventSubject(broken)
    await js.publish(subject, JSON.stringify({ type: "SessionTeleported", session_id: broken }))
    // A valid event after the corrupt one: projecting it needs the whole history, which cannot fold.
    const stopped = {
      type: "SessionStopped",
      id: newEventId(),
      session_id: broken,
      sequence: 2,
      time: new Date().toISOString(),
      schema_version: 1,
      command_id: "cmd-test",
      data: { reason: "requested" },
    }
    await js.publish(subject, JSON.stringify(stopped))
    const healthy = newSessionId()
    await ok(cmd("CreateSession", healthy, { collection_id: DEFAULT_COLLECTION, end_user_id: "u9" }))
    const record = await waitFor(
      () => runtime.readModel.get(healthy),
      (r) => r !== undefined,
    )
    expect(record?.session.status).toBe("created")
    // Nothing is left to retry forever: the unprojectable messages were terminated, not nak'd.
    const jsm = await jetstreamManager(nc)
    const settled = await waitFor(
      () => jsm.consumers.info(runtime.topology.eventStream, runtime.projector?.durableName ?? ""),
      (info) => info.num_ack_pending === 0 && info.num_pending === 0,
    )
    expect(settled.num_ack_pending).toBe(0)
    // The broken session never shows a state its history cannot reach: its view is as of its
    // creation, or absent when the projector first read it with the corrupt event already stored
    // (projecting loads the whole subject).
    expect([undefined, "created"]).toContain((await runtime.readModel.get(broken))?.session.status)
  })

  it("shows the automatic export from the stop, then each rtstream's asset once exported", async () => {
    const id = newSessionId()
    await ok(cmd("CreateSession", id, { collection_id: DEFAULT_COLLECTION, end_user_id: "u7" }))
    await ok(start(id))
    await ok(media(id))
    await ok(stop(id))
    await ok(finish(id))
    const stopped = await waitFor(
      async () => (await runtime.readModel.get(id))?.session,
      (session) => session?.status === "stopped",
    )
    expect(stopped).toMatchObject({ export_status: "exporting", exported_video_id: null })
    expect(stopped?.rtstreams.map((r) => r.status)).toEqual(["stopped", "stopped", "stopped"])
    const videoId = "m-01JC0000000000000000000001" as VideoId
    const asset_ids = {
      "mic:default": rawAssetId(videoId, "mic:default", "audio"),
      "display:1": rawAssetId(videoId, "display:1", "video"),
    }
    await ok(
      cmd("CompleteExport", id, {
        video_channel_id: "display:1",
        video_id: videoId,
        stream_url: "s",
        player_url: "p",
        asset_ids,
      }),
    )
    const exported = await waitFor(
      async () => (await runtime.readModel.get(id))?.session,
      (session) => session?.status === "exported",
    )
    expect(exported).toMatchObject({ export_status: "exported", exported_video_id: videoId })
    expect(exported?.rtstreams.map((r) => r.status)).toEqual(["stopped", "stopped", "stopped"])
    expect(exported?.rtstreams.map((r) => [r.name, r.exported_asset_id])).toEqual([
      ["mic:default", asset_ids["mic:default"]],
      ["system_audio:default", null],
      ["display:1", asset_ids["display:1"]],
    ])
  })

  it("reads a view stored before rtstreams had exported_asset_id, collection_id, status and created_at", async () => {
    const record = await runtime.readModel.get(ids[0] ?? "")
    if (record === undefined) throw new Error("no view")
    const { paused_channel_ids: _p, ...before } = record.session
    const old = {
      ...record,
      sequence: record.sequence,
      session: {
        ...before,
        // Older views also held the capture channel's id in channel_id, not its category.
        rtstreams: record.session.rtstreams.map(
          ({ exported_asset_id: _, collection_id: _c, status: _s, created_at: _t, ...r }) => ({
            ...r,
            channel_id: r.name,
          }),
        ),
      },
    }
    const id = newSessionId()
    await runtime.topology.sessions.put(id, JSON.stringify({ ...old, session: { ...old.session, id } }))
    const read = await runtime.readModel.get(id)
    expect(read?.session.rtstreams.map((r) => r.exported_asset_id)).toEqual([null, null, null])
    expect(read?.session.paused_channel_ids).toEqual([])
    expect(read?.session.rtstreams.map((r) => [r.name, r.channel_id])).toEqual([
      ["mic:default", "mic"],
      ["system_audio:default", "system_audio"],
      ["display:1", "screen"],
    ])
    for (const rtstream of read?.session.rtstreams ?? []) {
      expect(rtstream).toMatchObject({
        collection_id: "default",
        status: "connected",
        created_at: record.session.created_at,
      })
    }
    expect(Schema.is(CaptureSession)(read?.session)).toBe(true)
    await runtime.topology.sessions.purge(id)
  })

  it("scans every view that matches, whatever the page size", async () => {
    const scanned: Array<string> = []
    for await (const record of runtime.readModel.scan({ end_user_id: "u0" })) scanned.push(record.session.id)
    expect(scanned).toEqual(ids.filter((_, i) => i % 3 === 0))
    const other: Array<string> = []
    for await (const record of runtime.readModel.scan({ collection_id: "c-other" }))
      other.push(record.session.id)
    expect(other).toEqual(ids.filter((_, i) => i % 4 === 3))
  })

  it("shows a failed session's rtstreams stopped", async () => {
    const id = newSessionId()
    await ok(cmd("CreateSession", id, { collection_id: DEFAULT_COLLECTION, end_user_id: "u8" }))
    await ok(start(id))
    await ok(media(id))
    await ok(cmd("FailSession", id, { error: { code: "capture_failed", message: "device gone" } }))
    const failed = await waitFor(
      async () => (await runtime.readModel.get(id))?.session,
      (session) => session?.status === "failed",
    )
    expect(failed?.rtstreams.map((r) => r.status)).toEqual(["stopped", "stopped", "stopped"])
    expect(failed?.error).toEqual({ code: "capture_failed", message: "device gone" })
  })

  it("reads a view that does not decode as absent, lists the others, and projects over it", async () => {
    const id = newSessionId()
    await ok(cmd("CreateSession", id, { collection_id: DEFAULT_COLLECTION, end_user_id: "u8" }))
    await waitFor(
      () => runtime.readModel.get(id),
      (r) => r !== undefined,
    )
    const junk = newSessionId()
    await runtime.topology.sessions.put(junk, "not json {")
    await runtime.topology.sessions.put(id, JSON.stringify({ account_id: "a", sequence: 1, session: { id } }))
    expect(await runtime.readModel.get(junk)).toBeUndefined()
    expect(await runtime.readModel.get(id)).toBeUndefined()
    expect(logs.filter((line) => line.includes("does not decode"))).toHaveLength(2)
    const listed = await runtime.readModel.list({ end_user_id: "u8", limit: 100 })
    expect(listed.sessions.map((session) => session.id)).not.toContain(id)
    // The session's next event is projected over the unreadable view.
    await ok(start(id))
    const record = await waitFor(
      () => runtime.readModel.get(id),
      (r) => r?.session.status === "starting",
    )
    expect(Schema.is(CaptureSession)(record?.session)).toBe(true)
    await runtime.topology.sessions.purge(junk)
  })
})
