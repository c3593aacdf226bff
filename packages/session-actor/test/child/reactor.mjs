// A session reactor in its own process, for the kill test: `node reactor.mjs <nats url>`.
// It prints "ready", then, instead of issuing a FinishStopping, prints "finishing <session id>"
// and waits forever, so the test can SIGKILL it between reading the final segment and the stop.
import { MediaStore } from "@capture/media"
import { startSessionRuntime } from "@capture/session-actor"
import { connect } from "@nats-io/transport-node"

const nc = await connect({ servers: process.argv[2] })
const segments = await MediaStore.open(nc)
await startSessionRuntime(nc, {
  workers: true,
  reactor: {
    segments,
    silenceTimeoutMs: 600_000,
    ackWaitMs: 2_000,
    beforeCommand: async (command) => {
      if (command.type !== "FinishStopping") return
      console.log(`finishing ${command.session_id}`)
      await new Promise(() => {})
    },
  },
  log: (message) => console.log(message),
})
console.log("ready")
