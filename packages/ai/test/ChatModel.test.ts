import { resolveFfmpeg } from "@capture/binaries"
import { type ChatProvider, screenRecording, startChatProvider } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  chatCompletionsUrl,
  decideEvent,
  decodeFrames,
  EngineError,
  OpenAiChatModel,
  parseVerdict,
} from "../src/index.js"

const KEY = "sk-chat-test-key"
const ffmpeg = resolveFfmpeg()

let provider: ChatProvider
let answer = "A spreadsheet titled Q3 budget."

beforeAll(async () => {
  provider = await startChatProvider({ apiKey: KEY, answer: () => answer })
})
afterAll(async () => {
  await provider?.close()
})

const failure = async (promise: Promise<unknown>): Promise<EngineError | undefined> => {
  try {
    await promise
    return undefined
  } catch (error) {
    return error as EngineError
  }
}

describe("the OpenAI-compatible chat model", () => {
  it("names the endpoint whether or not the base URL ends in /v1", () => {
    expect(chatCompletionsUrl("http://127.0.0.1:1/v1/")).toBe("http://127.0.0.1:1/v1/chat/completions")
    expect(chatCompletionsUrl("http://127.0.0.1:1")).toBe("http://127.0.0.1:1/v1/chat/completions")
  })

  it("sends the prompt and frames as a text part and JPEG data URLs with the model and key", async () => {
    const recording = await screenRecording(ffmpeg, [{ lines: ["Quarterly budget review"], seconds: 2 }])
    const segment = recording.segments[0]
    if (segment === undefined) throw new Error("no segment")
    // The frames as the visual index gets them: grey for the change detector, JPEG for the model.
    const frames = await decodeFrames(ffmpeg, segment.bytes, 1, { jpeg: true })
    expect(frames.length).toBe(2)
    const model = new OpenAiChatModel({ baseUrl: provider.baseUrl, model: "gpt-4o-mini", apiKey: KEY })
    const text = await model.complete({
      system: "You index a screen recording.",
      text: "Describe the screen",
      images: frames.map((frame) => ({ mime: "image/jpeg", bytes: frame.jpeg ?? new Uint8Array() })),
    })
    expect(text).toBe(answer)
    const seen = provider.requests.at(-1)
    expect(seen).toMatchObject({
      status: 200,
      authorization: `Bearer ${KEY}`,
      model: "gpt-4o-mini",
      system: "You index a screen recording.",
      text: "Describe the screen",
      responseFormat: null,
    })
    expect(seen?.images.map((image) => [image.mime, image.width, image.height])).toEqual([
      ["image/jpeg", 1280, 720],
      ["image/jpeg", 1280, 720],
    ])
  }, 60_000)

  it("asks for JSON for a verdict and reads it from fences and prose", async () => {
    answer =
      'Sure.\n```json\n{"triggered": "yes", "confidence": "85", "explanation": "A budget is on screen."}\n```'
    const model = new OpenAiChatModel({ baseUrl: provider.baseUrl, model: "gpt-4o-mini", apiKey: KEY })
    const verdict = await decideEvent(
      model,
      { label: "Budget", prompt: "The user looks at a budget" },
      "Screen shows a budget",
      "visual",
    )
    expect(verdict).toEqual({ triggered: true, confidence: 0.85, explanation: "A budget is on screen." })
    const seen = provider.requests.at(-1)
    expect(seen?.responseFormat).toBe("json_object")
    expect(seen?.text).toContain("The user looks at a budget")
    expect(seen?.text).toContain("Screen shows a budget")
    answer = "I cannot tell."
    const unreadable = await failure(
      decideEvent(model, { label: "Budget", prompt: "a budget" }, "nothing", "audio"),
    )
    expect(unreadable).toBeInstanceOf(EngineError)
    expect(unreadable?.retryable).toBe(true)
  })

  it("reads verdicts leniently and refuses answers that are none", () => {
    expect(parseVerdict('{"triggered": false}')).toEqual({ triggered: false, confidence: 0, explanation: "" })
    expect(parseVerdict('{"triggered": true, "confidence": 7}')).toMatchObject({ confidence: 0.07 })
    expect(parseVerdict('{"triggered": true, "confidence": -2}')).toMatchObject({ confidence: 0 })
    expect(parseVerdict('note {"a": 1} then {"triggered": "No", "confidence": 0.3}')).toMatchObject({
      triggered: false,
      confidence: 0.3,
    })
    expect(parseVerdict('{"triggered": "maybe"}')).toBeUndefined()
    expect(parseVerdict("yes")).toBeUndefined()
  })

  it("does not retry a refused key or model, and retries an overloaded or unreachable provider", async () => {
    const ask = (options: { apiKey?: string; model?: string; baseUrl?: string }) =>
      failure(
        new OpenAiChatModel({
          baseUrl: options.baseUrl ?? provider.baseUrl,
          model: options.model ?? "gpt-4o-mini",
          apiKey: options.apiKey ?? KEY,
        }).complete({ system: "s", text: "t" }),
      )
    const wrongKey = await ask({ apiKey: "sk-wrong" })
    expect(wrongKey).toBeInstanceOf(EngineError)
    expect(wrongKey?.retryable).toBe(false)
    expect(wrongKey?.message).toContain("401")
    const wrongModel = await ask({ model: "nope" })
    expect(wrongModel?.retryable).toBe(false)
    expect(wrongModel?.message).toContain("404")
    provider.setDown(true)
    const down = await ask({})
    provider.setDown(false)
    expect(down?.retryable).toBe(true)
    expect(down?.message).toContain("503")
    const closed = await startChatProvider({ apiKey: KEY, answer: () => "" })
    const url = closed.baseUrl
    await closed.close()
    const unreachable = await ask({ baseUrl: url })
    expect(unreachable?.retryable).toBe(true)
  })
})
