/**
 * Bounds on what a JSON request may carry, checked before anything is decoded or stored: the body's
 * size and nesting (a global middleware, so a deep body never reaches a recursive parser or
 * serializer), then the size of `metadata` and the number and names of channels.
 */
import {
  type CaptureError,
  type ChannelInput,
  captureError,
  failureOf,
  httpStatusOf,
} from "@capture/protocol"
import { ByteSize, Effect } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import type { GatewayLimits } from "../Limits.js"

const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d
const OPEN_OBJECT = 0x7b
const CLOSE_OBJECT = 0x7d
const QUOTE = 0x22
const BACKSLASH = 0x5c

/**
 * Whether `text` nests arrays and objects deeper than `maxDepth` (the root counts as one), and if
 * so under which member of the root object (`body` when the root is not an object). One pass, no
 * recursion; brackets inside strings are text. Malformed JSON is left to the parser.
 */
export const findTooDeep = (text: string, maxDepth: number): { readonly field: string } | undefined => {
  let depth = 0
  let rootIsObject = false
  let lastRootString: { start: number; end: number } | undefined
  let memberOfDeepest: { start: number; end: number } | undefined
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) {
      const start = i
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i)
        if (d === BACKSLASH) i++
        else if (d === QUOTE) break
      }
      if (depth === 1) lastRootString = { start, end: i + 1 }
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (depth === 0) rootIsObject = c === OPEN_OBJECT
      // Entering a member's value of the root object: the string before it was its key.
      if (depth === 1) memberOfDeepest = lastRootString
      depth++
      if (depth > maxDepth) {
        if (!rootIsObject || memberOfDeepest === undefined) return { field: "body" }
        try {
          return { field: String(JSON.parse(text.slice(memberOfDeepest.start, memberOfDeepest.end))) }
        } catch {
          return { field: "body" }
        }
      }
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--
    }
  }
  return undefined
}

const isJson = (contentType: string | undefined): boolean =>
  contentType !== undefined && /^application\/(.+\+)?json\b/i.test(contentType.trim())

const hasBody = (headers: Readonly<Record<string, string | undefined>>): boolean =>
  headers["transfer-encoding"] !== undefined || Number(headers["content-length"] ?? 0) > 0

/**
 * Every route: a body must name its content type (415 `unsupported_media_type`); a JSON body may be at most `maxJsonBytes` (the HTTP layer's 413) and nest at most
 * `maxJsonDepth` deep (400 `invalid_json` naming the member). The body read here is the one the
 * API decodes: effect caches it on the request.
 */
export const jsonBodyLimits = (limits: Pick<GatewayLimits, "maxJsonBytes" | "maxJsonDepth">) =>
  HttpRouter.middleware(
    (httpEffect) =>
      Effect.provideService(
        Effect.gen(function* () {
          const request = yield* HttpServerRequest.HttpServerRequest
          const contentType = request.headers["content-type"]
          if (contentType === undefined && hasBody(request.headers)) {
            // A body says what it is: without a content type it is not taken for JSON (or anything else).
            const refused = captureError(
              "unsupported_media_type",
              "the body has no content-type: send application/json",
              { field: "content-type" },
            )
            return HttpServerResponse.jsonUnsafe(failureOf(refused), {
              status: httpStatusOf(refused.error_code),
            })
          }
          if (!isJson(contentType)) return yield* httpEffect
          const tooDeep = findTooDeep(yield* request.text, limits.maxJsonDepth)
          if (tooDeep === undefined) return yield* httpEffect
          const refused = captureError(
            "invalid_json",
            `${tooDeep.field}: nested deeper than ${limits.maxJsonDepth} levels`,
            { field: tooDeep.field },
          )
          return HttpServerResponse.jsonUnsafe(failureOf(refused), {
            status: httpStatusOf(refused.error_code),
          })
        }),
        HttpServerRequest.MaxBodySize,
        ByteSize.bytes(limits.maxJsonBytes),
      ),
    { global: true },
  )

const tooLarge = (field: string, message: string): CaptureError =>
  captureError("invalid_field", `${field}: ${message}`, { field })

/** `metadata` serialized must fit in `maxMetadataBytes`. */
export const checkMetadata = (
  metadata: unknown,
  limits: Pick<GatewayLimits, "maxMetadataBytes">,
): CaptureError | undefined => {
  if (metadata === null || metadata === undefined) return undefined
  return Buffer.byteLength(JSON.stringify(metadata)) > limits.maxMetadataBytes
    ? tooLarge("metadata", `at most ${limits.maxMetadataBytes} bytes of JSON`)
    : undefined
}

/** At most `maxChannels` channels, each name at most `maxChannelNameLength` characters. */
export const checkChannels = (
  channels: ReadonlyArray<ChannelInput>,
  limits: Pick<GatewayLimits, "maxChannels" | "maxChannelNameLength">,
): CaptureError | undefined => {
  if (channels.length > limits.maxChannels) {
    return tooLarge("channels", `at most ${limits.maxChannels} channels`)
  }
  for (const [i, channel] of channels.entries()) {
    for (const key of ["channel_name", "name"] as const) {
      const name = channel[key]
      if (name !== undefined && name.length > limits.maxChannelNameLength) {
        return tooLarge(`channels[${i}].${key}`, `at most ${limits.maxChannelNameLength} characters`)
      }
    }
  }
  return undefined
}
