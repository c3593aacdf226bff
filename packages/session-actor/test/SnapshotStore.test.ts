import { newSessionId, rawAssetId, type VideoId } from "@capture/protocol"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { MACHINE_VERSION, type SessionRuntime, startSessionRuntime } from "../src/index.js"
import { cmd, create, finish, media, start, stop } from "./commands.js"
import { Session } from "./Session.js"

let server: NatsServerHandle
let nc: NatsConnection
let runtime: SessionRuntime
const logs: Array<string> = []

beforeAll(async () => {
  server = await startNatsServer()
  nc = await connect({ servers: server.url })
  runtime = await startSessionRuntime(nc, { log: (message) => logs.push(message) })
})
afterAll(async () => {
  await runtime?.stop()
  await nc?.close()
  await server?.stop()
})

describe("SnapshotStore", () => {
  it("stores and reads back an exported session's whole state", async () => {
    const session = new Session()
    const id = newSessionId()
    const videoId = "m-01JC0000000000000000000001" as VideoId
    session.ok(create(id))
    session.ok(start(id))
    session.ok(media(id))
    session.ok(stop(id))
    session.ok(finish(id))
    session.ok(
      cmd("CompleteExport", id, {
        video_channel_id: "display:1",
        video_id: videoId,
        stream_url: "s",
        player_url: "p",
        asset_ids: { "display:1": rawAssetId(videoId, "display:1", "video") },
      }),
    )
    expect(session.state.value).toBe("exported")
    await runtime.snapshots.save(id, session.state, 42)
    expect(await runtime.snapshots.load(id)).toEqual({
      machine_version: MACHINE_VERSION,
      stream_sequence: 42,
      state: session.state,
    })
  })

  it("ignores a snapshot that does not decode, and the session loads from its events", async () => {
    const id = newSessionId()
    const outcome = await runtime.host.execute(create(id))
    if (Result.isFailure(outcome)) throw new Error(outcome.failure.message)
    const junks = [
      "not json {",
      JSON.stringify({ machine_version: MACHINE_VERSION, state: { value: "flying" } }),
    ]
    for (const junk of junks) {
      await runtime.topology.snapshots.put(id, junk)
      const before = logs.length
      expect(await runtime.snapshots.load(id)).toBeUndefined()
      expect(logs.slice(before)).toEqual([expect.stringContaining(`snapshot of ${id} does not decode`)])
      runtime.host.forget(id)
      expect((await runtime.host.load(id)).state).toMatchObject({
        value: "created",
        context: { session_id: id },
      })
    }
  })

  it("ignores a snapshot of another machine version without a word", async () => {
    const id = newSessionId()
    const before = logs.length
    await runtime.topology.snapshots.put(
      id,
      JSON.stringify({ machine_version: MACHINE_VERSION + 1, shape: "new" }),
    )
    expect(await runtime.snapshots.load(id)).toBeUndefined()
    expect(logs.length).toBe(before)
  })
})
