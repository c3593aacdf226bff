import { defineConfig } from "vitest/config"
import base from "./vitest.config.js"

// The slow suites `npm test` leaves out (`pnpm test:ai`): the AI pipeline through several
// `capture serve` processes, a worker killed mid-session, a provider down and back.
export default defineConfig({
  test: {
    ...base.test,
    include: ["packages/*/test/**/*.slow.test.ts", "apps/*/test/**/*.slow.test.ts"],
    exclude: ["**/node_modules/**"],
  },
})
