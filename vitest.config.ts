import { availableParallelism } from "node:os"
import { defineConfig } from "vitest/config"

// One vitest run for the whole tree; integration suites start their own NATS servers, so they run
// in separate forks and get generous hook timeouts (a container or a 3-node cluster takes seconds).
export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "apps/*/test/**/*.test.ts"],
    // Suites of minutes: transcription through several serve processes (`pnpm test:ai`), the
    // image and the compose topology (`pnpm test:deploy`), kills under load (`pnpm test:chaos`).
    exclude: ["**/node_modules/**", "**/*.slow.test.ts", "**/*.deploy.test.ts", "**/*.chaos.test.ts"],
    pool: "forks",
    // vitest leaves one core free by default (one fork on a 2-core CI machine); these suites mostly
    // wait on the processes they start, so two forks cut the run there from ~14 to ~10 minutes.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    testTimeout: 30_000,
    hookTimeout: 120_000,
    reporters: ["default", "./scripts/vitest-summary-reporter.ts"],
  },
})
