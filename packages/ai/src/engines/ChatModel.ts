/**
 * An OpenAI-compatible chat-completions provider with image input: OpenAI, vLLM, LocalAI, Ollama.
 * One `POST {base}/v1/chat/completions` per call: `model`, `messages` (a system message, then a
 * user message of a text part and image parts as base64 data URLs), answered
 * `choices[0].message.content`. A refused key or request is not retried; a timeout, a refused
 * connection, a 429 or a 5xx is (the pipeline retries, as it does transcription).
 */
import { type CaptureError, captureError } from "@capture/protocol"
import { Result } from "effect"
import { EngineError } from "./TranscriptionEngine.js"

export interface ChatModelOptions {
  /** e.g. `https://api.openai.com/v1` or `http://127.0.0.1:11434` (`/v1` is added when missing). */
  readonly baseUrl: string
  readonly model: string
  /** Sent as `Authorization: Bearer …` when set. */
  readonly apiKey?: string | undefined
  /** How long one request may take, ms (default 60 s: a vision model reading frames is slow). */
  readonly timeoutMs?: number
  /** The most tokens an answer may take (default 400). */
  readonly maxTokens?: number
}

/** An image for the model: a JPEG or PNG file. */
export interface ChatImage {
  readonly mime: "image/jpeg" | "image/png"
  readonly bytes: Uint8Array
}

/** One question: instructions, a text, the images it is about. */
export interface ChatRequest {
  readonly system: string
  readonly text: string
  readonly images?: ReadonlyArray<ChatImage>
  /** Ask for a JSON object (`response_format: {type: "json_object"}`). */
  readonly json?: boolean
  /** The provider's model to ask; absent: the model's own (`ChatModel.model`). */
  readonly model?: string
}

/** A chat model: the answer's text, or an `EngineError`. */
export interface ChatModel {
  readonly model: string
  readonly complete: (request: ChatRequest) => Promise<string>
}

/**
 * The models an index's `model_name` may name: each name and the provider's model it means. The
 * server's default model is always one of them (by its own name).
 */
export interface ChatModelChoice {
  /** The provider's model an index that names none gets; null: no chat model is configured. */
  readonly default: string | null
  /** `model_name` → the provider's model id. */
  readonly allowed: ReadonlyMap<string, string>
}

/** VideoDB's model tiers: code written against it sends these; a tier not configured here means the default. */
export const VIDEODB_MODEL_TIERS: ReadonlyArray<string> = ["mini", "basic", "pro", "ultra"]

/**
 * The provider's model an index's `model_name` means: absent, the default; a configured name, its
 * model; an unconfigured VideoDB tier, the default (null without a chat model). Anything else is
 * `400 unknown_model` (field `model_name`), naming what is allowed.
 */
export const resolveChatModel = (
  requested: string | null | undefined,
  choice: ChatModelChoice,
): Result.Result<string | null, CaptureError> => {
  if (requested === undefined || requested === null || requested === "") return Result.succeed(choice.default)
  const configured = choice.allowed.get(requested)
  if (configured !== undefined) return Result.succeed(configured)
  if (VIDEODB_MODEL_TIERS.includes(requested.toLowerCase())) return Result.succeed(choice.default)
  const names = [...choice.allowed.keys()]
  return Result.fail(
    captureError(
      "unknown_model",
      choice.default === null
        ? `model_name ${JSON.stringify(requested)}: no chat model is configured on this server (leave it out, or use ${VIDEODB_MODEL_TIERS.join(", ")})`
        : `unknown model_name ${JSON.stringify(requested)} (allowed: ${[...names, ...VIDEODB_MODEL_TIERS.filter((t) => !names.includes(t))].join(", ")})`,
      { field: "model_name" },
    ),
  )
}

/** The endpoint a base URL names. */
export const chatCompletionsUrl = (baseUrl: string): string => {
  const base = baseUrl.replace(/\/+$/, "")
  return /\/v1$/.test(base) ? `${base}/chat/completions` : `${base}/v1/chat/completions`
}

/** The image as a data URL (`data:image/jpeg;base64,…`). */
export const imageDataUrl = (image: ChatImage): string =>
  `data:${image.mime};base64,${Buffer.from(image.bytes.buffer, image.bytes.byteOffset, image.bytes.byteLength).toString("base64")}`

export class OpenAiChatModel implements ChatModel {
  readonly model: string
  private readonly url: string

  constructor(private readonly options: ChatModelOptions) {
    this.model = options.model
    this.url = chatCompletionsUrl(options.baseUrl)
  }

  async complete(request: ChatRequest): Promise<string> {
    const images = request.images ?? []
    const body = {
      model: request.model ?? this.options.model,
      messages: [
        { role: "system", content: request.system },
        {
          role: "user",
          content: [
            { type: "text", text: request.text },
            ...images.map((image) => ({ type: "image_url", image_url: { url: imageDataUrl(image) } })),
          ],
        },
      ],
      max_tokens: this.options.maxTokens ?? 400,
      temperature: 0,
      ...(request.json ? { response_format: { type: "json_object" } } : {}),
    }
    let response: Response
    try {
      response = await fetch(this.url, {
        method: "POST",
        body: JSON.stringify(body),
        headers: {
          "content-type": "application/json",
          ...(this.options.apiKey === undefined ? {} : { authorization: `Bearer ${this.options.apiKey}` }),
        },
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 60_000),
      })
    } catch (error) {
      throw new EngineError(`${this.url}: ${describe(error)}`, true)
    }
    const text = await response.text().catch(() => "")
    if (!response.ok) {
      const retryable = response.status === 408 || response.status === 429 || response.status >= 500
      throw new EngineError(`${this.url} answered ${response.status}: ${text.slice(0, 300)}`, retryable)
    }
    const content = answerOf(text)
    if (content === undefined || content.trim() === "") {
      throw new EngineError(`${this.url} answered without a message: ${text.slice(0, 300)}`, true)
    }
    return content.trim()
  }
}

/** `choices[0].message.content` of a chat completion: a string, or text parts (some servers). */
const answerOf = (body: string): string | undefined => {
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch {
    return undefined
  }
  const choices = (parsed as { choices?: unknown } | null)?.choices
  const message = Array.isArray(choices)
    ? (choices[0] as { message?: unknown } | undefined)?.message
    : undefined
  const content = (message as { content?: unknown } | undefined)?.content
  if (typeof content === "string") return content
  if (Array.isArray(content)) {
    return content
      .map((part) =>
        typeof (part as { text?: unknown })?.text === "string" ? (part as { text: string }).text : "",
      )
      .join("")
  }
  return undefined
}

const describe = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error)
  const cause = (error as { cause?: unknown }).cause
  return cause instanceof Error ? `${error.message} (${cause.message})` : error.message
}
