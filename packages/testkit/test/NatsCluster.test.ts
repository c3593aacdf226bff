/**
 * startNatsCluster: an R3 stream stays writable with one node down, and the restarted node catches up so
 * every acknowledged message is present on all replicas.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { describe, expect, it } from "vitest"
import { startNatsCluster } from "../src/NatsCluster.js"
import { eventually } from "./support.js"

const BEFORE_OUTAGE = 5
const DURING_OUTAGE = 10
const TOTAL = BEFORE_OUTAGE + DURING_OUTAGE

describe("startNatsCluster", () => {
  // stopNode shuts a node down cleanly; killNode SIGKILLs it, as a crash would.
  it.each(["stopNode", "killNode"] as const)(
    "keeps an R3 stream writable and complete through a node outage (%s)",
    { timeout: 90_000 },
    async (outage) => {
      const cluster = await startNatsCluster()
      try {
        expect(cluster.urls).toHaveLength(3)
        expect(cluster.servers).toBe(cluster.urls.join(","))

        // Clients talk only to the nodes that stay up, as a client of a real cluster would after failover.
        const nc = await connect({ servers: cluster.urls.slice(1), maxReconnectAttempts: -1 })
        try {
          const jsm = await jetstreamManager(nc)
          const js = jetstream(nc)
          await jsm.streams.add({ name: "EVENTS", subjects: ["events.>"], num_replicas: 3 })

          // msgID makes retries safe: a publish whose ack was lost in a leader election is not stored twice.
          const publish = (i: number) =>
            eventually(() => js.publish(`events.${i}`, `event ${i}`, { msgID: `event-${i}`, timeout: 2_000 }))
          for (let i = 1; i <= BEFORE_OUTAGE; i++) await publish(i)

          await cluster[outage](0)
          expect(cluster.pidOf(0)).toBeUndefined()
          for (let i = BEFORE_OUTAGE + 1; i <= TOTAL; i++) {
            const ack = await publish(i)
            expect(ack.seq).toBe(i)
          }

          await cluster.restartNode(0)
          await eventually(async () => {
            const info = await jsm.streams.info("EVENTS")
            expect(info.state.messages).toBe(TOTAL)
            const replicas = info.cluster?.replicas ?? []
            expect(replicas).toHaveLength(2)
            expect(replicas.every((peer) => peer.current && !peer.offline)).toBe(true)
          })
          for (let seq = 1; seq <= TOTAL; seq++) {
            const stored = await jsm.streams.getMessage("EVENTS", { seq })
            expect(stored?.string()).toBe(`event ${seq}`)
          }
        } finally {
          await nc.close()
        }
      } finally {
        await cluster.stop()
      }
    },
  )
})
