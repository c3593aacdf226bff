/**
 * startLinuxDesktop: its environment reaches a private X display and PulseAudio server (a speaker
 * sink and a virtual microphone as the defaults), and stop() leaves nothing behind. A missing tool
 * fails, naming it.
 */
import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { requireDesktopTools, startLinuxDesktop } from "../src/LinuxDesktop.js"

const run = (command: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv) =>
  new Promise<{ code: number; stdout: string }>((resolve) =>
    execFile(command, [...args], { env, timeout: 10_000 }, (error, stdout) =>
      resolve({ code: error === null ? 0 : 1, stdout }),
    ),
  )

describe("startLinuxDesktop", () => {
  it("gives a private display and PulseAudio server, and stop() removes them", {
    timeout: 60_000,
  }, async () => {
    const desktop = await startLinuxDesktop()
    let stopped = false
    try {
      expect(desktop.display).toMatch(/^:\d+$/)
      expect(desktop.env.DISPLAY).toBe(desktop.display)
      const screen = await run("xdpyinfo", [], desktop.env)
      expect(screen.code).toBe(0)
      expect(screen.stdout).toMatch(/dimensions:\s+1280x720 pixels/)
      const info = await run("pactl", ["info"], desktop.env)
      expect(info.stdout).toMatch(/Default Sink: speaker/)
      expect(info.stdout).toMatch(/Default Source: vmic/)
      await desktop.speak("micsink", "testing")

      const runtime = desktop.env.PULSE_RUNTIME_PATH ?? ""
      expect(existsSync(runtime)).toBe(true)
      await desktop.stop()
      stopped = true
      expect(existsSync(runtime)).toBe(false)
      expect((await run("xdpyinfo", [], desktop.env)).code).not.toBe(0)
    } finally {
      if (!stopped) await desktop.stop()
    }
  })

  it("names the tools it cannot find", () => {
    const path = process.env.PATH
    process.env.PATH = ""
    try {
      expect(() => requireDesktopTools()).toThrow(/needs Xvfb, xrandr, .*espeak-ng/)
    } finally {
      process.env.PATH = path
    }
  })
})
