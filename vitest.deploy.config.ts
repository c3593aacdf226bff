import { defineConfig } from "vitest/config"
import base from "./vitest.config.js"

// `pnpm test:deploy`: the image and the compose topology under infra/ on this machine's podman
// (an image build and nine containers: minutes, so `npm test` leaves it out).
export default defineConfig({
  test: {
    ...base.test,
    include: ["apps/*/test/**/*.deploy.test.ts"],
    exclude: ["**/node_modules/**"],
    fileParallelism: false,
  },
})
