import { newSessionId } from "@capture/protocol"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { jetstream } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { PieceInfo } from "../src/internal/plan.js"
import { type ExportJob, MuxerStore, shortHash } from "../src/internal/store.js"

let nats: NatsServerHandle
let nc: NatsConnection
let store: MuxerStore
const logs: Array<string> = []

beforeAll(async () => {
  nats = await startNatsServer()
  nc = await connect({ servers: nats.url })
  store = await MuxerStore.open(nc, { log: (message) => logs.push(message) })
})
afterAll(async () => {
  await nc?.close()
  await nats?.stop()
})

const piece = (key: string): PieceInfo => ({
  key,
  name: `pieces/${key}.m4s`,
  kind: "raw",
  ok: true,
  bytes: 10,
  timescale: 90_000,
  samples: 60,
  duration: 180_000,
  min_pts: 0,
  moofs: 1,
  init: `pieces/${key}-init.mp4`,
})

describe("MuxerStore records that do not decode", () => {
  it("skips a piece record that does not decode and reads the ones after it", async () => {
    const sessionId = newSessionId()
    await store.putPiece(sessionId, piece("a"), undefined)
    const subject = `capture.muxer.pieces.${sessionId}`
    await jetstream(nc).publish(subject, "not json {")
    await jetstream(nc).publish(
      subject,
      JSON.stringify({ ...piece("x"), kind: "sideways", session_id: sessionId }),
    )
    await store.putPiece(sessionId, piece("b"), undefined)
    const pieces = await store.pieces(sessionId)
    expect([...pieces.keys()]).toEqual(["a", "b"])
    expect(pieces.get("b")).toEqual({ ...piece("b"), session_id: sessionId })
    expect(logs.filter((line) => line.includes("piece record"))).toHaveLength(2)
  })

  it("replaces a job claim that does not decode; the replacement then holds for every claimant", async () => {
    const sessionId = newSessionId()
    const job = (video_id: string): ExportJob => ({
      video_id,
      session_id: sessionId,
      video_channel_id: "display:1",
      attempt: 0,
      created_at: new Date().toISOString(),
    })
    await jetstream(nc).publish(`capture.muxer.jobs.${sessionId}.${shortHash("display:1#0")}`, "not json {")
    const first = await store.claimJob(sessionId, "display:1#0", job("m-first"))
    expect(first.video_id).toBe("m-first")
    expect((await store.claimJob(sessionId, "display:1#0", job("m-second"))).video_id).toBe("m-first")
    expect(logs.filter((line) => line.includes("job claim"))).toHaveLength(1)
  })
})

describe("MuxerStore pieces made twice", () => {
  it("records the size of the bytes stored first when a second instance's encode of a piece differs", async () => {
    const sessionId = newSessionId()
    const mix = (bytes: number): PieceInfo => ({ ...piece(`mix/${sessionId}`), kind: "mix", bytes })
    const first = await store.putPiece(sessionId, mix(5), new Uint8Array(5).fill(1))
    const second = await store.putPiece(sessionId, mix(7), new Uint8Array(7).fill(2))
    expect(first.bytes).toBe(5)
    expect(second.bytes).toBe(5)
    expect(await store.getObject(mix(5).name)).toEqual(new Uint8Array(5).fill(1))
    expect((await store.pieces(sessionId)).get(`mix/${sessionId}`)?.bytes).toBe(5)
  })
})
