import { defineConfig } from "vitest/config"
import base from "./vitest.config.js"

// `pnpm test:chaos`: sessions recorded and exported through real processes (a 3-node NATS cluster,
// gateways, muxers, recorders) while they are SIGKILLed at random moments; about ten minutes, so
// `npm test` leaves it out.
export default defineConfig({
  test: {
    ...base.test,
    include: ["apps/*/test/**/*.chaos.test.ts"],
    exclude: ["**/node_modules/**"],
    fileParallelism: false,
  },
})
