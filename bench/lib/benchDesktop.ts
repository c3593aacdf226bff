/**
 * A private Linux desktop to measure the recorder's capture on, after the recorder's real-device
 * test desktop: an Xvfb screen of 1280x720 (Xvfb picks a free display number, `-displayfd`), a
 * moving test pattern played full screen on it on request (ffmpeg's sdl2 output), and a PulseAudio
 * server in its own runtime folder whose default sink is a null sink with a tone playing into it;
 * the sink's monitor is what the recorder captures as system audio.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { findOnPath, runTool } from "@capture/recorder"
import { desktopEnv, startXvfb } from "@capture/testkit"

export interface BenchDesktop {
  /** `:N` */
  readonly display: string
  /** The environment that reaches this desktop (DISPLAY, PULSE_SERVER, …). */
  readonly env: NodeJS.ProcessEnv
  /** Why there is no PulseAudio server; undefined when there is one. */
  readonly noPulse: string | undefined
  /** The servers' pids: their CPU serves the capture too (a grab copies the screen in the X server). */
  readonly serverPids: { readonly x: number; readonly pulse: number | undefined }
  /** Plays a moving 1280x720 30 fps pattern full screen until the returned stop. */
  readonly animate: () => Promise<{ readonly pid: number; readonly stop: () => Promise<void> }>
  readonly stop: () => Promise<void>
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** SIGTERM, then SIGKILL after 3 s. */
const stopChild = async (child: ChildProcess) => {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  child.kill("SIGTERM")
  await Promise.race([exited, sleep(3_000)])
  if (child.exitCode === null && child.signalCode === null) {
    child.kill("SIGKILL")
    await exited
  }
}

/** The last lines a child wrote to stderr, for an error message. */
const stderrOf = (child: ChildProcess) => {
  let log = ""
  child.stderr?.on("data", (chunk: Buffer) => {
    log = (log + chunk.toString("utf8")).slice(-2_000)
  })
  return () => log.trim()
}

/** Starts the desktop; throws when Xvfb is missing or does not start. PulseAudio is optional. */
export const startBenchDesktop = async (ffmpeg: string): Promise<BenchDesktop> => {
  if (findOnPath("Xvfb") === undefined) throw new Error("Xvfb is not installed (apt-get install xvfb)")
  const folder = mkdtempSync(join(tmpdir(), "capture-bench-desktop-"))
  const children: Array<ChildProcess> = []
  const stop = async () => {
    for (const child of [...children].reverse()) await stopChild(child)
    rmSync(folder, { recursive: true, force: true })
  }
  try {
    const { xvfb, display } = await startXvfb(children)
    const env = desktopEnv(folder, display)
    const pulse = await startPulse(ffmpeg, env, children)

    const animate = async () => {
      const painter = spawn(
        ffmpeg,
        [
          ...["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi"],
          ...["-i", "testsrc2=size=1280x720:rate=30", "-pix_fmt", "yuv420p"],
          ...["-f", "sdl2", "-window_fullscreen", "1", "capture-bench-screen"],
        ],
        { env, stdio: ["ignore", "ignore", "pipe"] },
      )
      children.push(painter)
      const log = stderrOf(painter)
      // Given a moment to map its window; one that exits by then has failed.
      await sleep(1_500)
      if (painter.exitCode !== null || painter.pid === undefined) {
        throw new Error(`the screen painter (ffmpeg -f sdl2) exited: ${log()}`)
      }
      return { pid: painter.pid, stop: () => stopChild(painter) }
    }
    if (xvfb.pid === undefined) throw new Error("Xvfb has no pid")
    return {
      display,
      env,
      noPulse: typeof pulse === "string" ? pulse : undefined,
      serverPids: { x: xvfb.pid, pulse: typeof pulse === "number" ? pulse : undefined },
      animate,
      stop,
    }
  } catch (error) {
    await stop()
    throw error
  }
}

/**
 * A PulseAudio server with a null sink `speaker` as the default sink and a tone playing into it.
 * Returns its pid, or why it could not run.
 */
const startPulse = async (
  ffmpeg: string,
  env: NodeJS.ProcessEnv,
  children: Array<ChildProcess>,
): Promise<number | string> => {
  const missing = ["pulseaudio", "pactl"].filter((tool) => findOnPath(tool) === undefined)
  if (missing.length > 0) return `${missing.join(" and ")} not installed`
  const runtime = env.PULSE_RUNTIME_PATH ?? ""
  const pulseEnv = { ...env }
  delete pulseEnv.DISPLAY
  delete pulseEnv.PULSE_SERVER
  const pulse = spawn(
    "pulseaudio",
    [
      ...["-n", "--daemonize=no", "--exit-idle-time=-1", "--disable-shm=true", "--use-pid-file=false"],
      ...["--log-target=stderr", "--log-level=error"],
      ...["-L", `module-native-protocol-unix auth-anonymous=1 socket=${join(runtime, "native")}`],
      ...["-L", "module-null-sink sink_name=speaker sink_properties=device.description=Speaker"],
    ],
    { env: pulseEnv, stdio: ["ignore", "ignore", "pipe"] },
  )
  children.push(pulse)
  const log = stderrOf(pulse)
  const deadline = Date.now() + 10_000
  while ((await runTool("pactl", ["info"], { env })).code !== 0) {
    if (pulse.exitCode !== null || Date.now() > deadline) {
      await stopChild(pulse)
      return `PulseAudio did not start: ${log()}`
    }
    await sleep(100)
  }
  const sink = await runTool("pactl", ["set-default-sink", "speaker"], { env })
  if (sink.code !== 0) {
    await stopChild(pulse)
    return `pactl set-default-sink: ${sink.stderr.trim()}`
  }
  const tone = spawn(
    ffmpeg,
    [
      ...["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi"],
      ...["-i", "sine=frequency=440:beep_factor=4:sample_rate=48000"],
      ...["-f", "pulse", "-device", "speaker", "capture-bench-tone"],
    ],
    { env, stdio: ["ignore", "ignore", "pipe"] },
  )
  children.push(tone)
  return pulse.pid ?? "pulseaudio has no pid"
}
