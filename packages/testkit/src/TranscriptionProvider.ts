/**
 * An OpenAI-compatible transcription provider on 127.0.0.1, for testing the `openai` engine
 * against a real HTTP server: `POST /v1/audio/transcriptions`, multipart, checked as the real
 * API checks it (a bearer key, a `model`, a `file` part that is a 16-bit PCM WAV, `json` or
 * `text` response format), answered `{"text": …}` by the function a test gives (say, a local
 * engine). It can be taken down (answers 503) and brought back.
 */
import { once } from "node:events"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"

/** A request the provider got, and what it answered. */
export interface ProviderRequest {
  readonly status: number
  readonly model: string | null
  readonly filename: string | null
  readonly contentType: string | null
  readonly audioBytes: number
}

export interface TranscriptionProvider {
  /** The base URL to configure (`http://127.0.0.1:PORT/v1`). */
  readonly baseUrl: string
  readonly requests: ReadonlyArray<ProviderRequest>
  /** Requests being answered now. */
  readonly inFlight: () => number
  /** Down: every request is answered 503 (as an overloaded provider does). */
  setDown(down: boolean): void
  close(): Promise<void>
}

export interface TranscriptionProviderOptions {
  readonly apiKey: string
  /** The models it serves (default `whisper-1`). */
  readonly models?: ReadonlyArray<string>
  /** Turns one WAV into its words. */
  readonly transcribe: (wav: Uint8Array) => Promise<string>
  /** Extra time each answer takes, ms (a slow provider). */
  readonly delayMs?: number
}

const error = (response: ServerResponse, status: number, message: string): number => {
  response.writeHead(status, { "content-type": "application/json" })
  response.end(JSON.stringify({ error: { message, type: "invalid_request_error" } }))
  return status
}

const readBody = async (request: IncomingMessage): Promise<Buffer> => {
  const chunks: Array<Buffer> = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

const isPcmWav = (bytes: Uint8Array): boolean => {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return (
    b.length >= 44 &&
    b.toString("ascii", 0, 4) === "RIFF" &&
    b.toString("ascii", 8, 12) === "WAVE" &&
    b.readUInt16LE(20) === 1 &&
    b.readUInt16LE(34) === 16
  )
}

export const startTranscriptionProvider = async (
  options: TranscriptionProviderOptions,
): Promise<TranscriptionProvider> => {
  const requests: Array<ProviderRequest> = []
  const models = options.models ?? ["whisper-1"]
  let down = false
  let inFlight = 0
  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<ProviderRequest> => {
    const seen = { model: null, filename: null, contentType: null, audioBytes: 0 }
    if (down) return { ...seen, status: error(response, 503, "the server is overloaded") }
    if (request.method !== "POST" || request.url !== "/v1/audio/transcriptions") {
      return { ...seen, status: error(response, 404, `no route ${request.method} ${request.url}`) }
    }
    if (request.headers.authorization !== `Bearer ${options.apiKey}`) {
      return { ...seen, status: error(response, 401, "Incorrect API key provided") }
    }
    const type = request.headers["content-type"] ?? ""
    if (!type.startsWith("multipart/form-data; boundary=")) {
      return { ...seen, status: error(response, 400, "expected multipart/form-data") }
    }
    const body = await readBody(request)
    let form: FormData
    try {
      form = await new Response(body, { headers: { "content-type": type } }).formData()
    } catch {
      return { ...seen, status: error(response, 400, "malformed multipart body") }
    }
    const model = form.get("model")
    const file = form.get("file")
    const format = form.get("response_format") ?? "json"
    const got = {
      model: typeof model === "string" ? model : null,
      filename: file instanceof File ? file.name : null,
      contentType: file instanceof File ? file.type : null,
      audioBytes: file instanceof File ? file.size : 0,
    }
    if (got.model === null)
      return { ...got, status: error(response, 400, "you must provide a model parameter") }
    if (!models.includes(got.model))
      return { ...got, status: error(response, 404, `model ${got.model} does not exist`) }
    if (!(file instanceof File)) return { ...got, status: error(response, 400, "you must provide a file") }
    if (format !== "json" && format !== "text") {
      return {
        ...got,
        status: error(response, 400, `response_format ${String(format)} is not supported here`),
      }
    }
    if (options.delayMs !== undefined) await new Promise((resolve) => setTimeout(resolve, options.delayMs))
    const audio = new Uint8Array(await file.arrayBuffer())
    if (!isPcmWav(audio) || !/\.wav$/.test(got.filename ?? "")) {
      return { ...got, status: error(response, 400, "Invalid file format: expected a 16-bit PCM WAV") }
    }
    const text = await options.transcribe(audio)
    if (format === "text") {
      response.writeHead(200, { "content-type": "text/plain" })
      response.end(text)
    } else {
      response.writeHead(200, { "content-type": "application/json" })
      response.end(JSON.stringify({ text }))
    }
    return { ...got, status: 200 }
  }
  const server: Server = createServer((request, response) => {
    inFlight++
    handle(request, response).then(
      (seen) => {
        inFlight--
        requests.push(seen)
      },
      (failure: unknown) => {
        inFlight--
        requests.push({ status: 500, model: null, filename: null, contentType: null, audioBytes: 0 })
        error(response, 500, String(failure))
      },
    )
  })
  server.listen(0, "127.0.0.1")
  await once(server, "listening")
  const { port } = server.address() as AddressInfo
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    inFlight: () => inFlight,
    setDown: (value) => {
      down = value
    },
    close: () => {
      server.closeAllConnections()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}
