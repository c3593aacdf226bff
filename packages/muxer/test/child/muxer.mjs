// A muxer in its own process, for the crash test: `node muxer.mjs <nats url>`. Prints its log.
import { MediaStore } from "@capture/media"
import { Muxer } from "@capture/muxer"
import { startSessionRuntime } from "@capture/session-actor"
import { connect } from "@nats-io/transport-node"

const nc = await connect({ servers: process.argv[2] })
const runtime = await startSessionRuntime(nc)
const mediaStore = await MediaStore.open(nc)
await Muxer.start(nc, runtime, {
  mediaStore,
  publicUrl: "http://127.0.0.1:8080",
  ackWaitMs: 2_000,
  // Everything happens at export time, so the kill lands in the middle of real work.
  incremental: false,
  log: (message) => console.log(message),
})
console.log("ready")
