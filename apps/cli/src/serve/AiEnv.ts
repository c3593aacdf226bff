/**
 * The AI pipeline's settings from the environment: which transcription engines this server
 * offers and which one a call that names none gets. The local engine (pocketsphinx) needs no
 * configuration and is offered wherever it is installed; the OpenAI-compatible one once
 * `CAPTURE_OPENAI_BASE_URL` is set. A chat model (OpenAI-compatible chat completions with image
 * input) describes scenes and decides alerts once `CAPTURE_CHAT_BASE_URL` is set. A malformed
 * value stops `serve` with a usage error.
 */
import {
  type ChatModel,
  type ChatModelChoice,
  type EngineChoice,
  type Engines,
  findPocketsphinx,
  LocalEngine,
  OpenAiChatModel,
  OpenAiEngine,
} from "@capture/ai"
import type { TranscriptionEngineName } from "@capture/protocol"
import { usage } from "../Exit.js"

/** What `serve` reads for the AI pipeline. */
export interface AiSettings {
  readonly choice: EngineChoice
  readonly openai:
    | {
        readonly baseUrl: string
        readonly model: string
        readonly apiKey: string | undefined
        readonly language: string | undefined
        readonly timeoutMs: number
      }
    | undefined
  /** The chat model for indexes and alerts; absent: the local engines and the deterministic matcher. */
  readonly chat:
    | {
        readonly baseUrl: string
        readonly model: string
        readonly apiKey: string | undefined
        readonly timeoutMs: number
        /** The names an index's `model_name` may give (`CAPTURE_CHAT_MODELS`) → the provider's model. */
        readonly models: ReadonlyMap<string, string>
      }
    | undefined
  readonly interim: boolean
  readonly parallel: number
  readonly engineAttempts: number
  readonly engineRetryDelayMs: number
  /** How long a segment may go unacknowledged (its worker gone) before another worker gets it. */
  readonly ackWaitMs: number
}

const positiveInt = (name: string, fallback: number): number => {
  const raw = process.env[name]
  if (raw === undefined || raw === "") return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value <= 0) throw usage(`${name} must be a positive integer, got "${raw}"`)
  return value
}

const flag = (name: string, fallback: boolean): boolean => {
  const raw = process.env[name]
  if (raw === undefined || raw === "") return fallback
  if (raw === "true" || raw === "1") return true
  if (raw === "false" || raw === "0") return false
  throw usage(`${name} must be true or false, got "${raw}"`)
}

export const aiSettingsFromEnv = (): AiSettings => {
  const baseUrl = process.env.CAPTURE_OPENAI_BASE_URL
  const openai =
    baseUrl === undefined || baseUrl === ""
      ? undefined
      : {
          baseUrl,
          model: process.env.CAPTURE_OPENAI_MODEL || "whisper-1",
          apiKey: process.env.CAPTURE_OPENAI_API_KEY || undefined,
          language: process.env.CAPTURE_OPENAI_LANGUAGE || undefined,
          timeoutMs: positiveInt("CAPTURE_OPENAI_TIMEOUT_MS", 30_000),
        }
  if (openai !== undefined && !/^https?:\/\//.test(openai.baseUrl)) {
    throw usage(`CAPTURE_OPENAI_BASE_URL must be an http(s) URL, got "${openai.baseUrl}"`)
  }
  const chatBaseUrl = process.env.CAPTURE_CHAT_BASE_URL
  const chat =
    chatBaseUrl === undefined || chatBaseUrl === ""
      ? undefined
      : {
          baseUrl: chatBaseUrl,
          model: process.env.CAPTURE_CHAT_MODEL || "gpt-4o-mini",
          apiKey: process.env.CAPTURE_CHAT_API_KEY || undefined,
          timeoutMs: positiveInt("CAPTURE_CHAT_TIMEOUT_MS", 60_000),
          models: chatModelsFromEnv(),
        }
  if (chat !== undefined && !/^https?:\/\//.test(chat.baseUrl)) {
    throw usage(`CAPTURE_CHAT_BASE_URL must be an http(s) URL, got "${chat.baseUrl}"`)
  }
  if (chat === undefined && (process.env.CAPTURE_CHAT_MODELS ?? "") !== "") {
    throw usage("CAPTURE_CHAT_MODELS needs CAPTURE_CHAT_BASE_URL")
  }
  const offered: Array<TranscriptionEngineName> = []
  if (findPocketsphinx() !== undefined) offered.push("local")
  if (openai !== undefined) offered.push("openai")
  const wanted = process.env.CAPTURE_TRANSCRIPTION_ENGINE
  let fallback: TranscriptionEngineName = offered[0] ?? "local"
  if (wanted !== undefined && wanted !== "") {
    if (wanted !== "local" && wanted !== "openai") {
      throw usage(`CAPTURE_TRANSCRIPTION_ENGINE must be local or openai, got "${wanted}"`)
    }
    if (wanted === "openai" && openai === undefined) {
      throw usage("CAPTURE_TRANSCRIPTION_ENGINE=openai needs CAPTURE_OPENAI_BASE_URL")
    }
    fallback = wanted
  }
  return {
    choice: { offered, default: fallback },
    openai,
    chat,
    interim: flag("CAPTURE_AI_INTERIM", true),
    parallel: positiveInt("CAPTURE_AI_PARALLEL", 4),
    engineAttempts: positiveInt("CAPTURE_AI_ENGINE_ATTEMPTS", 3),
    engineRetryDelayMs: positiveInt("CAPTURE_AI_RETRY_DELAY_MS", 1_000),
    ackWaitMs: positiveInt("CAPTURE_AI_ACK_WAIT_MS", 30_000),
  }
}

/**
 * `CAPTURE_CHAT_MODELS`: the models an index may name, comma-separated, each `name` (the
 * provider's model id) or `name=model` (a name such as VideoDB's tiers `mini`, `pro` for a model).
 */
const chatModelsFromEnv = (): ReadonlyMap<string, string> => {
  const raw = process.env.CAPTURE_CHAT_MODELS ?? ""
  const models = new Map<string, string>()
  for (const item of raw.split(",")) {
    const entry = item.trim()
    if (entry === "") continue
    const match = /^([^=\s]{1,128})(?:=([^=\s]{1,128}))?$/.exec(entry)
    if (match === null) {
      throw usage(`CAPTURE_CHAT_MODELS must be names or name=model, comma-separated, got "${entry}"`)
    }
    const name = match[1] as string
    models.set(name, match[2] ?? name)
  }
  return models
}

/** The models indexes may name with these settings: the listed ones and the default (by its own name). */
export const chatModelChoiceOf = (settings: AiSettings): ChatModelChoice =>
  settings.chat === undefined
    ? { default: null, allowed: new Map() }
    : {
        default: settings.chat.model,
        allowed: new Map([[settings.chat.model, settings.chat.model], ...settings.chat.models]),
      }

/** The engines an AI worker runs with these settings. */
export const enginesOf = (settings: AiSettings): Engines => ({
  ...(settings.choice.offered.includes("local") ? { local: new LocalEngine() } : {}),
  ...(settings.openai === undefined ? {} : { openai: new OpenAiEngine(settings.openai) }),
})

/** The chat model an AI worker asks with these settings, if any. */
export const chatModelOf = (settings: AiSettings): ChatModel | undefined =>
  settings.chat === undefined ? undefined : new OpenAiChatModel(settings.chat)
