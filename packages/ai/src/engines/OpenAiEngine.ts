/**
 * An OpenAI-compatible `/v1/audio/transcriptions` provider: OpenAI, whisper.cpp's server,
 * faster-whisper servers, LocalAI. Each utterance is one multipart upload (`file` as WAV, `model`,
 * `response_format=json`), answered `{"text": …}`. A refused key or request is not retried; a
 * timeout, a refused connection, a 429 or a 5xx is.
 */
import { toWav } from "../audio/Wav.js"
import { EngineError, type TranscriptionEngine } from "./TranscriptionEngine.js"

export interface OpenAiEngineOptions {
  /** e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8080` (`/v1` is added when missing). */
  readonly baseUrl: string
  readonly model: string
  /** Sent as `Authorization: Bearer …` when set. */
  readonly apiKey?: string | undefined
  /** ISO-639-1 language hint (`en`), sent when set. */
  readonly language?: string | undefined
  /** How long one request may take, ms (default 30 s). */
  readonly timeoutMs?: number
}

/** The endpoint a base URL names. */
export const transcriptionsUrl = (baseUrl: string): string => {
  const base = baseUrl.replace(/\/+$/, "")
  return /\/v1$/.test(base) ? `${base}/audio/transcriptions` : `${base}/v1/audio/transcriptions`
}

export class OpenAiEngine implements TranscriptionEngine {
  readonly name = "openai" as const
  private readonly url: string

  constructor(private readonly options: OpenAiEngineOptions) {
    this.url = transcriptionsUrl(options.baseUrl)
  }

  async transcribe(pcm: Int16Array): Promise<string> {
    const form = new FormData()
    form.append("file", new Blob([toWav(pcm)], { type: "audio/wav" }), "utterance.wav")
    form.append("model", this.options.model)
    form.append("response_format", "json")
    if (this.options.language !== undefined) form.append("language", this.options.language)
    let response: Response
    try {
      response = await fetch(this.url, {
        method: "POST",
        body: form,
        headers: this.options.apiKey === undefined ? {} : { authorization: `Bearer ${this.options.apiKey}` },
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 30_000),
      })
    } catch (error) {
      throw new EngineError(`${this.url}: ${describe(error)}`, true)
    }
    const body = await response.text().catch(() => "")
    if (!response.ok) {
      const retryable = response.status === 408 || response.status === 429 || response.status >= 500
      throw new EngineError(`${this.url} answered ${response.status}: ${body.slice(0, 300)}`, retryable)
    }
    try {
      const parsed: unknown = JSON.parse(body)
      if (
        typeof parsed === "object" &&
        parsed !== null &&
        typeof (parsed as { text?: unknown }).text === "string"
      ) {
        return (parsed as { text: string }).text.trim()
      }
    } catch {
      // below
    }
    throw new EngineError(`${this.url} answered without a "text": ${body.slice(0, 300)}`, true)
  }

  async close(): Promise<void> {}
}

const describe = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error)
  const cause = (error as { cause?: unknown }).cause
  return cause instanceof Error ? `${error.message} (${cause.message})` : error.message
}
