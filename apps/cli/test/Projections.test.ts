import { newSessionId } from "@capture/protocol"
import { type SessionRuntime, startSessionRuntime } from "@capture/session-actor"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { runCli } from "./cli.js"
import { create, media, run, start } from "./commands.js"

let nats: NatsServerHandle
let nc: NatsConnection
let runtime: SessionRuntime

beforeAll(async () => {
  nats = await startNatsServer()
  nc = await connect({ servers: nats.url })
  runtime = await startSessionRuntime(nc, { workers: true })
})
afterAll(async () => {
  await runtime?.stop()
  await nc?.close()
  await nats?.stop()
})

describe("capture projections rebuild", () => {
  it("restores a read-model entry that was deleted", async () => {
    const id = newSessionId()
    await run(runtime, create(id), start(id), media(id))
    await expect.poll(async () => (await runtime.readModel.get(id))?.session.status).toBe("active")
    // From here on only the command under test can write the read model.
    await runtime.stop()
    await runtime.topology.sessions.delete(id)
    expect(await runtime.readModel.get(id)).toBeUndefined()

    const result = await runCli(["projections", "rebuild", "--nats", nats.url])
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/rebuilt 1 sessions/)
    const record = await runtime.readModel.get(id)
    expect(record?.session).toMatchObject({ id, status: "active" })
    expect(record?.sequence).toBe(3)
  })
})
