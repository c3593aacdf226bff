/**
 * The AI crash suites' cluster, in separate processes a test can SIGKILL: a NATS server, a slow
 * OpenAI-compatible transcription provider on 127.0.0.1 (the local engine behind its real API,
 * 1.2 s an utterance, so a worker is caught with a request in flight), `capture serve --role
 * gateway`, and the AI and muxer processes each test starts.
 */
import { LocalEngine, pcmOfWav } from "@capture/ai"
import {
  getFreePort,
  type NatsServerHandle,
  startNatsServer,
  startTranscriptionProvider,
  type TranscriptionProvider,
} from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { killIfRunning, type ServeProcess, startServe } from "./cli.js"
import { type CaptureServer, pollUntil, sleep, startCaptureServer } from "./endToEnd.js"

export interface AiCluster {
  readonly nats: NatsServerHandle
  readonly nc: NatsConnection
  /** `serve --role gateway`: the API alone, so the only pipelines are the roles started below. */
  readonly gateway: CaptureServer
  readonly provider: TranscriptionProvider
  /** Starts `serve --role <role>` against the cluster, once it is ready. */
  readonly startRole: (role: "ai" | "muxer") => Promise<ServeProcess>
  /**
   * SIGKILLs `worker` once `stored()` counts a first result and the provider has the next
   * utterance in flight, then starts another AI worker in its place.
   */
  readonly killMidUtterance: (worker: ServeProcess, stored: () => Promise<number>) => Promise<void>
  /** Stops every process it started, then NATS. */
  readonly stop: () => Promise<void>
}

/** Waits for a late duplicate to show itself, if there were one. */
export const settle = () => sleep(5_000)

export const startAiCluster = async (providerKey: string): Promise<AiCluster> => {
  const nats = await startNatsServer()
  const nc = await connect({ servers: nats.url })
  const local = new LocalEngine()
  const provider = await startTranscriptionProvider({
    apiKey: providerKey,
    delayMs: 1_200,
    transcribe: (wav) => local.transcribe(pcmOfWav(wav)),
  })
  const env: Record<string, string> = {
    NATS_URL: nats.url,
    CAPTURE_OPENAI_BASE_URL: provider.baseUrl,
    CAPTURE_OPENAI_API_KEY: providerKey,
    CAPTURE_TRANSCRIPTION_ENGINE: "openai",
    // A killed worker's records and jobs go to another one after 3 s.
    CAPTURE_AI_ACK_WAIT_MS: "3000",
  }
  const gateway = await startCaptureServer(nats.url, { env, args: ["--role", "gateway"] })
  const started: Array<ServeProcess> = []
  const startRole = async (role: "ai" | "muxer") => {
    const process = startServe(["--role", role, "--port", String(await getFreePort())], env)
    started.push(process)
    await process.waitFor(/\[capture\] ready/, 180_000)
    return process
  }
  const killMidUtterance = async (worker: ServeProcess, stored: () => Promise<number>) => {
    await pollUntil(
      "a first result, with the next utterance in flight",
      async () => ({ stored: await stored(), inFlight: provider.inFlight() }),
      (now) => now.stored >= 1 && now.inFlight >= 1,
      { timeoutMs: 120_000, intervalMs: 50 },
    )
    worker.child.kill("SIGKILL")
    await worker.exited
    await startRole("ai")
  }
  const stop = async () => {
    for (const process of started) await killIfRunning(process)
    await killIfRunning(gateway.process)
    await provider.close()
    await local.close()
    await nc.close()
    await nats.stop()
  }
  return { nats, nc, gateway, provider, startRole, killMidUtterance, stop }
}
