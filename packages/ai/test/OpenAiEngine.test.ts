import { readFileSync } from "node:fs"
import {
  festivalAvailable,
  speak,
  startTranscriptionProvider,
  type TranscriptionProvider,
  wordRecall,
} from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { EngineError, LocalEngine, OpenAiEngine, pcmOfWav, transcriptionsUrl } from "../src/index.js"
import { ffmpeg } from "./support.js"

const KEY = "sk-provider-test-key"
const SENTENCE = "Please send the report to the team before Friday."

let local: LocalEngine
let provider: TranscriptionProvider

beforeAll(async () => {
  local = new LocalEngine()
  provider = await startTranscriptionProvider({
    apiKey: KEY,
    transcribe: (wav) => local.transcribe(pcmOfWav(wav)),
  })
})
afterAll(async () => {
  await provider?.close()
  await local?.close()
})

describe("the OpenAI-compatible engine", () => {
  it("names the endpoint whether or not the base URL ends in /v1", () => {
    expect(transcriptionsUrl("http://127.0.0.1:1/v1/")).toBe("http://127.0.0.1:1/v1/audio/transcriptions")
    expect(transcriptionsUrl("http://127.0.0.1:1")).toBe("http://127.0.0.1:1/v1/audio/transcriptions")
  })

  it.skipIf(!festivalAvailable())(
    "uploads a WAV with the model and key and reads the text back",
    async () => {
      const pcm = pcmOfWav(new Uint8Array(readFileSync(await speak(ffmpeg, SENTENCE))))
      const engine = new OpenAiEngine({ baseUrl: provider.baseUrl, model: "whisper-1", apiKey: KEY })
      const text = await engine.transcribe(pcm)
      expect(wordRecall(SENTENCE, text)).toBeGreaterThanOrEqual(0.5)
      expect(provider.requests.at(-1)).toMatchObject({
        status: 200,
        model: "whisper-1",
        filename: "utterance.wav",
        contentType: "audio/wav",
        audioBytes: 44 + pcm.length * 2,
      })
    },
    60_000,
  )

  it("does not retry a refused key or model, and retries an overloaded or unreachable provider", async () => {
    const pcm = new Int16Array(1600)
    const refusal = async (engine: OpenAiEngine) => {
      try {
        await engine.transcribe(pcm)
        return undefined
      } catch (error) {
        return error as EngineError
      }
    }
    const wrongKey = await refusal(
      new OpenAiEngine({ baseUrl: provider.baseUrl, model: "whisper-1", apiKey: "sk-wrong" }),
    )
    expect(wrongKey).toBeInstanceOf(EngineError)
    expect(wrongKey?.retryable).toBe(false)
    expect(wrongKey?.message).toContain("401")
    const wrongModel = await refusal(
      new OpenAiEngine({ baseUrl: provider.baseUrl, model: "nope", apiKey: KEY }),
    )
    expect(wrongModel?.retryable).toBe(false)
    provider.setDown(true)
    const down = await refusal(
      new OpenAiEngine({ baseUrl: provider.baseUrl, model: "whisper-1", apiKey: KEY }),
    )
    provider.setDown(false)
    expect(down?.retryable).toBe(true)
    expect(down?.message).toContain("503")
    const closedPort = await refusal(
      new OpenAiEngine({ baseUrl: "http://127.0.0.1:9/v1", model: "whisper-1", timeoutMs: 2_000 }),
    )
    expect(closedPort?.retryable).toBe(true)
  })
})
