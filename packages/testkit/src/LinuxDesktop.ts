/**
 * A private Linux desktop for real-device tests: an Xvfb display (a free display number picked by
 * Xvfb itself, `-displayfd`), a PulseAudio server on its own runtime folder with a null sink as the
 * speakers and a virtual microphone (a remapped monitor of a second null sink), and espeak-ng
 * speech played into either. The screen shows a red full-screen window. Every tool it needs must be
 * installed (`scripts/bootstrap.sh --test`): a missing one is an error, never a silent skip.
 *
 * Processes that should capture this desktop get `desktop.env` (DISPLAY, PULSE_SERVER, …).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { rmSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { findOnPath } from "@capture/binaries"
import { onProcessExit } from "./internal/Cleanup.js"

const TOOLS = [
  "Xvfb",
  "xrandr",
  "xdpyinfo",
  "xmessage",
  "xwininfo",
  "pulseaudio",
  "pactl",
  "paplay",
  "espeak-ng",
] as const

/** Throws, naming what is missing and how to install it, unless every tool is on PATH. */
export const requireDesktopTools = (): void => {
  const missing = TOOLS.filter((tool) => findOnPath(tool) === undefined)
  if (missing.length > 0) {
    throw new Error(
      `the real-device test needs ${missing.join(", ")}: run scripts/bootstrap.sh --test, or ` +
        "apt-get install xvfb pulseaudio pulseaudio-utils espeak-ng x11-utils x11-xserver-utils",
    )
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const run = (command: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(command, [...args], { env, timeout: 10_000 }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr }),
    ),
  )

const isRunning = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null

const stopProcess = async (child: ChildProcess | undefined) => {
  if (child === undefined || !isRunning(child)) return
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()))
  child.kill("SIGTERM")
  await Promise.race([exited, sleep(3_000)])
  if (isRunning(child)) child.kill("SIGKILL")
}

/**
 * Starts Xvfb (1280x720, 24 bit) on a display number it picks itself (`-displayfd`), pushed onto
 * `children` so the caller's cleanup stops it; resolves with it and its `:N`.
 */
export const startXvfb = async (
  children: Array<ChildProcess>,
): Promise<{ readonly xvfb: ChildProcess; readonly display: string }> => {
  const xvfb = spawn("Xvfb", ["-displayfd", "3", "-screen", "0", "1280x720x24", "-nolisten", "tcp"], {
    stdio: ["ignore", "ignore", "pipe", "pipe"],
  })
  children.push(xvfb)
  let log = ""
  xvfb.stderr?.on("data", (chunk: Buffer) => {
    log = (log + chunk.toString("utf8")).slice(-2_000)
  })
  let timer: NodeJS.Timeout | undefined
  const displayNumber = await new Promise<string>((resolve, reject) => {
    let text = ""
    const pipe = xvfb.stdio[3] as NodeJS.ReadableStream
    pipe.on("data", (chunk: Buffer) => {
      text += chunk.toString()
      if (text.includes("\n")) resolve(text.trim())
    })
    xvfb.once("exit", () => reject(new Error(`Xvfb exited: ${log.trim()}`)))
    // 30 s: on a machine shared with other test suites Xvfb can take well over 10 s to start.
    timer = setTimeout(() => reject(new Error(`Xvfb did not report a display: ${log.trim()}`)), 30_000)
  }).finally(() => clearTimeout(timer))
  return { xvfb, display: `:${displayNumber}` }
}

/** The environment of a private desktop kept in `folder`: its display and its PulseAudio socket. */
export const desktopEnv = (folder: string, display: string): NodeJS.ProcessEnv => {
  const runtime = join(folder, "pulse")
  return {
    ...process.env,
    DISPLAY: display,
    HOME: folder,
    XDG_RUNTIME_DIR: folder,
    PULSE_RUNTIME_PATH: runtime,
    PULSE_STATE_PATH: join(folder, "pulse-state"),
    PULSE_SERVER: `unix:${join(runtime, "native")}`,
  }
}

/** A running private desktop. */
export interface LinuxDesktop {
  /** `:N` */
  readonly display: string
  /** The environment that reaches this desktop (DISPLAY, PULSE_SERVER, …). */
  readonly env: NodeJS.ProcessEnv
  /** Speaks `text` into a sink (`speaker`: system audio, `micsink`: the microphone), in a loop. */
  readonly speak: (sink: "speaker" | "micsink", text: string) => Promise<void>
  /** Stops every process of the desktop and deletes its folder. */
  readonly stop: () => Promise<void>
}

/** Starts Xvfb, PulseAudio (speaker sink, virtual mic) and a red full-screen window. */
export const startLinuxDesktop = async (): Promise<LinuxDesktop> => {
  requireDesktopTools()
  const folder = await mkdtemp(join(tmpdir(), "capture-desktop-"))
  const children: ChildProcess[] = []
  const loops: Array<{ stopped: boolean }> = []
  // A test process that exits without stop() (a hook timeout, a signal) takes the desktop with it.
  const unregister = onProcessExit(() => {
    for (const child of children) if (isRunning(child)) child.kill("SIGKILL")
    rmSync(folder, { recursive: true, force: true })
  })
  const stop = async () => {
    for (const loop of loops) loop.stopped = true
    for (const child of [...children].reverse()) await stopProcess(child)
    await rm(folder, { recursive: true, force: true })
    unregister()
  }
  try {
    const { display } = await startXvfb(children)
    const env = desktopEnv(folder, display)
    const pulseEnv = { ...env }
    delete pulseEnv.DISPLAY
    delete pulseEnv.PULSE_SERVER
    const pulse = spawn(
      "pulseaudio",
      [
        ...["-n", "--daemonize=no", "--exit-idle-time=-1", "--disable-shm=true", "--use-pid-file=false"],
        ...["--log-target=stderr", "--log-level=error"],
        ...["-L", `module-native-protocol-unix auth-anonymous=1 socket=${join(folder, "pulse", "native")}`],
        ...["-L", "module-null-sink sink_name=speaker sink_properties=device.description=Speaker"],
        ...["-L", "module-null-sink sink_name=micsink sink_properties=device.description=MicFeed"],
        ...["-L", "module-remap-source source_name=vmic master=micsink.monitor"],
      ],
      { env: pulseEnv, stdio: ["ignore", "ignore", "pipe"] },
    )
    children.push(pulse)
    let pulseLog = ""
    pulse.stderr?.on("data", (chunk: Buffer) => {
      pulseLog += chunk.toString()
    })
    const deadline = Date.now() + 10_000
    while ((await run("pactl", ["info"], env)).code !== 0) {
      if (pulse.exitCode !== null || Date.now() > deadline)
        throw new Error(`PulseAudio did not start: ${pulseLog}`)
      await sleep(100)
    }
    for (const args of [
      ["set-default-sink", "speaker"],
      ["set-default-source", "vmic"],
    ]) {
      const result = await run("pactl", args, env)
      if (result.code !== 0) throw new Error(`pactl ${args.join(" ")}: ${result.stderr}`)
    }
    // Paint the screen red with a borderless full-screen window (no window manager places it).
    // Right after Xvfb reports its display a client is now and then refused ("Can't open
    // display"): a painter that exits before its window is mapped is started again.
    const paint = () => {
      const painter = spawn("xmessage", ["-geometry", "1280x720+0+0", "-bg", "red", "-fg", "red", " "], {
        env,
        stdio: ["ignore", "ignore", "pipe"],
      })
      children.push(painter)
      let log = ""
      painter.stderr?.on("data", (chunk: Buffer) => {
        log += chunk.toString()
      })
      return { painter, log: () => log }
    }
    let painting = paint()
    const painted = Date.now() + 10_000
    while (!(await run("xwininfo", ["-root", "-children"], env)).stdout.includes("xmessage")) {
      if (Date.now() > painted) {
        throw new Error(
          `xmessage did not map its window (exit ${painting.painter.exitCode}): ${painting.log()}`,
        )
      }
      if (painting.painter.exitCode !== null) painting = paint()
      await sleep(50)
    }

    const speak = async (sink: "speaker" | "micsink", text: string) => {
      const wav = join(folder, `${sink}.wav`)
      const made = await run("espeak-ng", ["-w", wav, text], env)
      if (made.code !== 0) throw new Error(`espeak-ng: ${made.stderr}`)
      const loop = { stopped: false }
      loops.push(loop)
      const play = () => {
        if (loop.stopped) return
        const player = spawn("paplay", ["-d", sink, wav], { env, stdio: "ignore" })
        children.push(player)
        player.once("close", () => {
          children.splice(children.indexOf(player), 1)
          play()
        })
      }
      play()
    }
    return { display, env, speak, stop }
  } catch (error) {
    await stop()
    throw error
  }
}
