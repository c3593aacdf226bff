import type { Reporter, TestModule } from "vitest/node"

// Prints one plain closing line ("Tests: N passed, N failed, N skipped") that CI tooling can read.
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0
    let failed = 0
    let skipped = 0
    for (const module of testModules) {
      // A module that failed to load, or a module's or suite's hook that threw, counts as a failure
      // even when no test ran (the tests under a failed beforeAll are only marked skipped).
      failed += module.errors().length
      for (const suite of module.children.allSuites()) failed += suite.errors().length
      for (const test of module.children.allTests()) {
        const state = test.result().state
        if (state === "passed") passed++
        else if (state === "failed") failed++
        else skipped++
      }
    }
    process.stdout.write(`\nTests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`)
  }
}
