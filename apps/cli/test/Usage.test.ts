import { describe, expect, it } from "vitest"
import { runCli } from "./cli.js"

describe("wrong usage", () => {
  it("exits 2 with the help for an unknown flag, a missing argument or an unknown subcommand", async () => {
    for (const args of [
      ["serve", "--no-such-flag"],
      ["keys", "revoke"],
      ["keys", "no-such-command"],
    ]) {
      const result = await runCli(args)
      expect(result.code, `capture ${args.join(" ")}: ${result.stdout}${result.stderr}`).toBe(2)
      expect(result.stdout + result.stderr).toMatch(/USAGE/i)
    }
  })

  it("exits 0 when help is asked for", async () => {
    const result = await runCli(["keys", "--help"])
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/USAGE/i)
  })
})
