/**
 * An OpenAI-compatible chat-completions provider on 127.0.0.1, for testing the chat model against
 * a real HTTP server: `POST /v1/chat/completions` with a JSON body, checked as the real API checks
 * it (a bearer key, a served `model`, a non-empty `messages` array of known roles whose content is
 * a string or parts, text parts with a `text`, image parts whose `image_url.url` is a base64 data
 * URL of a real JPEG or PNG file, a `response_format` of `text` or `json_object`), answered as a
 * chat completion by the function a test gives. It can be taken down (answers 503) and brought back.
 */
import { once } from "node:events"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"

/** An image a request carried, decoded from its data URL. */
export interface ChatRequestImage {
  readonly mime: "image/jpeg" | "image/png"
  readonly bytes: Uint8Array
  /** From the file's header (JPEG SOF or PNG IHDR). */
  readonly width: number
  readonly height: number
}

/** A request the provider got (when it got that far), and what it answered. */
export interface ChatProviderRequest {
  readonly status: number
  readonly authorization: string | null
  readonly model: string | null
  /** The system messages' text. */
  readonly system: string
  /** The user messages' text parts, joined. */
  readonly text: string
  readonly images: ReadonlyArray<ChatRequestImage>
  readonly responseFormat: string | null
}

export interface ChatProvider {
  /** The base URL to configure (`http://127.0.0.1:PORT/v1`). */
  readonly baseUrl: string
  readonly requests: ReadonlyArray<ChatProviderRequest>
  /** Down: every request is answered 503 (as an overloaded provider does). */
  setDown(down: boolean): void
  close(): Promise<void>
}

export interface ChatProviderOptions {
  readonly apiKey: string
  /** The models it serves (default `gpt-4o-mini`). */
  readonly models?: ReadonlyArray<string>
  /** The assistant message's content for a well-formed request. */
  readonly answer: (request: ChatProviderRequest) => Promise<string> | string
}

const error = (response: ServerResponse, status: number, message: string, code: string): number => {
  response.writeHead(status, { "content-type": "application/json" })
  response.end(JSON.stringify({ error: { message, type: "invalid_request_error", code } }))
  return status
}

const readBody = async (request: IncomingMessage): Promise<Buffer> => {
  const chunks: Array<Buffer> = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** A JPEG's size from its first SOF marker; undefined when it is not a whole JPEG file. */
const jpegSize = (b: Buffer): { width: number; height: number } | undefined => {
  if (
    b.length < 4 ||
    b[0] !== 0xff ||
    b[1] !== 0xd8 ||
    b[b.length - 2] !== 0xff ||
    b[b.length - 1] !== 0xd9
  ) {
    return undefined
  }
  let at = 2
  while (at + 9 < b.length && b[at] === 0xff) {
    const marker = b[at + 1] ?? 0
    const length = b.readUInt16BE(at + 2)
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: b.readUInt16BE(at + 5), width: b.readUInt16BE(at + 7) }
    }
    at += 2 + length
  }
  return undefined
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

const pngSize = (b: Buffer): { width: number; height: number } | undefined =>
  b.length > 24 && b.subarray(0, 8).equals(PNG_SIGNATURE) && b.toString("ascii", 12, 16) === "IHDR"
    ? { width: b.readUInt32BE(16), height: b.readUInt32BE(20) }
    : undefined

/** An image part's data URL as an image, or why it is refused. */
const imageOf = (url: unknown): ChatRequestImage | string => {
  if (typeof url !== "string") return "image_url.url must be a string"
  const match = /^data:(image\/(?:jpeg|png));base64,([A-Za-z0-9+/]+={0,2})$/.exec(url)
  if (match === null) return "image_url.url must be a base64 data URL of a JPEG or PNG image"
  const mime = match[1] as "image/jpeg" | "image/png"
  const bytes = Buffer.from(match[2] ?? "", "base64")
  const size = mime === "image/jpeg" ? jpegSize(bytes) : pngSize(bytes)
  if (size === undefined) return `the image is not a valid ${mime} file`
  return { mime, bytes: new Uint8Array(bytes), ...size }
}

export const startChatProvider = async (options: ChatProviderOptions): Promise<ChatProvider> => {
  const requests: Array<ChatProviderRequest> = []
  const models = options.models ?? ["gpt-4o-mini"]
  let down = false
  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<ChatProviderRequest> => {
    const seen: ChatProviderRequest = {
      status: 0,
      authorization: request.headers.authorization ?? null,
      model: null,
      system: "",
      text: "",
      images: [],
      responseFormat: null,
    }
    const refuse = (status: number, message: string, code: string) => ({
      ...seen,
      status: error(response, status, message, code),
    })
    if (down) return refuse(503, "the server is overloaded", "overloaded")
    if (request.method !== "POST" || request.url !== "/v1/chat/completions") {
      return refuse(404, `no route ${request.method} ${request.url}`, "not_found")
    }
    if (request.headers.authorization !== `Bearer ${options.apiKey}`) {
      return refuse(401, "Incorrect API key provided", "invalid_api_key")
    }
    if (!(request.headers["content-type"] ?? "").startsWith("application/json")) {
      return refuse(400, "expected application/json", "invalid_request")
    }
    let body: Record<string, unknown>
    try {
      const parsed: unknown = JSON.parse((await readBody(request)).toString("utf8"))
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
        throw new Error("not an object")
      body = parsed as Record<string, unknown>
    } catch {
      return refuse(400, "the body is not a JSON object", "invalid_json")
    }
    const model = typeof body.model === "string" ? body.model : null
    const got = { ...seen, model }
    const refuseGot = (status: number, message: string, code: string) => ({
      ...got,
      status: error(response, status, message, code),
    })
    if (model === null) return refuseGot(400, "you must provide a model parameter", "missing_model")
    if (!models.includes(model)) return refuseGot(404, `the model ${model} does not exist`, "model_not_found")
    const messages = body.messages
    if (!Array.isArray(messages) || messages.length === 0) {
      return refuseGot(400, "messages must be a non-empty array", "invalid_messages")
    }
    const system: Array<string> = []
    const texts: Array<string> = []
    const images: Array<ChatRequestImage> = []
    for (const [i, message] of messages.entries()) {
      const { role, content } = (message ?? {}) as { role?: unknown; content?: unknown }
      if (role !== "system" && role !== "user" && role !== "assistant") {
        return refuseGot(400, `messages[${i}].role must be system, user or assistant`, "invalid_role")
      }
      if (typeof content === "string") {
        ;(role === "system" ? system : texts).push(content)
        continue
      }
      if (!Array.isArray(content) || content.length === 0) {
        return refuseGot(
          400,
          `messages[${i}].content must be a string or an array of parts`,
          "invalid_content",
        )
      }
      for (const [j, part] of content.entries()) {
        const { type, text, image_url } = (part ?? {}) as {
          type?: unknown
          text?: unknown
          image_url?: unknown
        }
        if (type === "text" && typeof text === "string") {
          ;(role === "system" ? system : texts).push(text)
        } else if (type === "image_url" && role === "user") {
          const image = imageOf((image_url as { url?: unknown } | undefined)?.url)
          if (typeof image === "string") {
            return refuseGot(400, `messages[${i}].content[${j}]: ${image}`, "invalid_image_url")
          }
          images.push(image)
        } else {
          return refuseGot(400, `messages[${i}].content[${j}] is not a valid part`, "invalid_content")
        }
      }
    }
    const format = (body.response_format as { type?: unknown } | undefined)?.type ?? null
    if (format !== null && format !== "text" && format !== "json_object") {
      return refuseGot(400, `response_format ${String(format)} is not supported`, "invalid_response_format")
    }
    const well: ChatProviderRequest = {
      ...got,
      system: system.join("\n"),
      text: texts.join("\n"),
      images,
      responseFormat: typeof format === "string" ? format : null,
    }
    const content = await options.answer(well)
    response.writeHead(200, { "content-type": "application/json" })
    response.end(
      JSON.stringify({
        id: `chatcmpl-${requests.length}`,
        object: "chat.completion",
        created: Math.floor(Date.now() / 1000),
        model,
        choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
        usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
      }),
    )
    return { ...well, status: 200 }
  }
  const server: Server = createServer((request, response) => {
    handle(request, response).then(
      (seen) => requests.push(seen),
      (failure: unknown) => {
        requests.push({
          status: 500,
          authorization: null,
          model: null,
          system: "",
          text: "",
          images: [],
          responseFormat: null,
        })
        error(response, 500, String(failure), "server_error")
      },
    )
  })
  server.listen(0, "127.0.0.1")
  await once(server, "listening")
  const { port } = server.address() as AddressInfo
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    setDown: (value) => {
      down = value
    },
    close: () => {
      server.closeAllConnections()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}
