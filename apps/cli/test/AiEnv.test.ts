import { OpenAiChatModel } from "@capture/ai"
import { afterEach, describe, expect, it } from "vitest"
import { aiSettingsFromEnv, chatModelChoiceOf, chatModelOf } from "../src/serve/AiEnv.js"

const CHAT = [
  "CAPTURE_CHAT_BASE_URL",
  "CAPTURE_CHAT_MODEL",
  "CAPTURE_CHAT_API_KEY",
  "CAPTURE_CHAT_TIMEOUT_MS",
  "CAPTURE_CHAT_MODELS",
]
const saved = Object.fromEntries(CHAT.map((name) => [name, process.env[name]]))

afterEach(() => {
  for (const name of CHAT) {
    if (saved[name] === undefined) delete process.env[name]
    else process.env[name] = saved[name]
  }
})

describe("the AI settings from the environment", () => {
  it("has no chat model unless CAPTURE_CHAT_BASE_URL is set", () => {
    for (const name of CHAT) delete process.env[name]
    const settings = aiSettingsFromEnv()
    expect(settings.chat).toBeUndefined()
    expect(chatModelOf(settings)).toBeUndefined()
  })

  it("reads the chat model's URL, model, key and timeout", () => {
    process.env.CAPTURE_CHAT_BASE_URL = "http://127.0.0.1:8000/v1"
    process.env.CAPTURE_CHAT_API_KEY = "sk-local"
    delete process.env.CAPTURE_CHAT_MODEL
    delete process.env.CAPTURE_CHAT_TIMEOUT_MS
    expect(aiSettingsFromEnv().chat).toEqual({
      baseUrl: "http://127.0.0.1:8000/v1",
      model: "gpt-4o-mini",
      apiKey: "sk-local",
      timeoutMs: 60_000,
      models: new Map(),
    })
    process.env.CAPTURE_CHAT_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
    process.env.CAPTURE_CHAT_TIMEOUT_MS = "90000"
    const settings = aiSettingsFromEnv()
    expect(settings.chat).toMatchObject({ model: "Qwen/Qwen2.5-VL-7B-Instruct", timeoutMs: 90_000 })
    const chat = chatModelOf(settings)
    expect(chat).toBeInstanceOf(OpenAiChatModel)
    expect(chat?.model).toBe("Qwen/Qwen2.5-VL-7B-Instruct")
  })

  it("refuses a base URL that is not http(s) and a timeout that is not a positive integer", () => {
    process.env.CAPTURE_CHAT_BASE_URL = "localhost:8000"
    expect(() => aiSettingsFromEnv()).toThrow(/CAPTURE_CHAT_BASE_URL must be an http\(s\) URL/)
    process.env.CAPTURE_CHAT_BASE_URL = "http://127.0.0.1:8000"
    process.env.CAPTURE_CHAT_TIMEOUT_MS = "soon"
    expect(() => aiSettingsFromEnv()).toThrow(/CAPTURE_CHAT_TIMEOUT_MS must be a positive integer/)
  })

  it("reads the models an index may name; the default is one of them", () => {
    process.env.CAPTURE_CHAT_BASE_URL = "http://127.0.0.1:8000"
    process.env.CAPTURE_CHAT_MODEL = "small-vl"
    process.env.CAPTURE_CHAT_MODELS = "pro=large-vl, llava"
    const choice = chatModelChoiceOf(aiSettingsFromEnv())
    expect(choice.default).toBe("small-vl")
    expect([...choice.allowed]).toEqual([
      ["small-vl", "small-vl"],
      ["pro", "large-vl"],
      ["llava", "llava"],
    ])
    process.env.CAPTURE_CHAT_MODELS = "pro=a=b"
    expect(() => aiSettingsFromEnv()).toThrow(/CAPTURE_CHAT_MODELS must be names or name=model/)
    delete process.env.CAPTURE_CHAT_BASE_URL
    process.env.CAPTURE_CHAT_MODELS = "pro=large-vl"
    expect(() => aiSettingsFromEnv()).toThrow(/CAPTURE_CHAT_MODELS needs CAPTURE_CHAT_BASE_URL/)
  })
})
