/**
 * startNatsServer against a real server: JetStream works, and restart() keeps the URL and the stored
 * messages. Run twice, so a machine with a container engine covers both paths: the default selection (a
 * container there) and a forced child process.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { describe, expect, it } from "vitest"
import { type NatsServerOptions, startNatsServer } from "../src/NatsServer.js"
import { eventually } from "./support.js"

const selections: ReadonlyArray<readonly [string, NatsServerOptions]> = [
  ["default selection", {}],
  ["forced child process", { kind: "process" }],
]

describe.each(selections)("startNatsServer (%s)", (_, options) => {
  it("serves JetStream and keeps stored messages across restart()", { timeout: 60_000 }, async () => {
    const server = await startNatsServer(options)
    try {
      if (options.kind !== undefined) expect(server.kind).toBe(options.kind)
      expect(server.url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/)

      // One connection throughout: it must find the restarted server again at the same URL.
      const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 })
      try {
        // A request sent while the client is still reconnecting can go unanswered; a short timeout keeps the
        // retries below quick.
        const jsm = await jetstreamManager(nc, { timeout: 2_000 })
        const js = jetstream(nc, { timeout: 2_000 })
        await jsm.streams.add({ name: "EVENTS", subjects: ["events.>"] })
        const first = await js.publish("events.created", "hello")
        expect(first.seq).toBe(1)

        await server.restart()

        const stored = await eventually(() => jsm.streams.getMessage("EVENTS", { seq: 1 }))
        expect(stored?.subject).toBe("events.created")
        expect(stored?.string()).toBe("hello")
        const second = await eventually(() => js.publish("events.updated", "again", { msgID: "second" }))
        expect(second.seq).toBe(2)
      } finally {
        await nc.close()
      }
    } finally {
      await server.stop()
    }
  })
})
