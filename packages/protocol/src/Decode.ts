/**
 * Decoding at the edges. Unknown input (HTTP bodies, NATS messages, KV entries, files) becomes a
 * typed value or a `CaptureError` that names the offending path, e.g. `channels[1].type`.
 */
import { Result, Schema, SchemaIssue } from "effect"
import { CaptureError } from "./ErrorCode.js"

const standardFormatter = SchemaIssue.makeFormatterStandardSchemaV1()

/** Renders a property path the way a client writes it: `channels[1].channel_id`. */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (out, key) =>
      typeof key === "number" ? `${out}[${key}]` : out === "" ? String(key) : `${out}.${String(key)}`,
    "",
  )

/** The first issue of a schema error as a client-facing `CaptureError`. */
export const toCaptureError = (error: Schema.SchemaError): CaptureError => {
  const issues = standardFormatter(error.issue).issues
  const first = issues[0]
  const path = (first?.path ?? []).map((segment) =>
    typeof segment === "object" && segment !== null ? (segment as { key: PropertyKey }).key : segment,
  )
  const field = formatPath(path)
  const message = first?.message ?? error.message
  const missing = /missing key/i.test(message)
  return new CaptureError({
    error_code: missing ? "missing_field" : field === "" ? "invalid_request" : "invalid_field",
    message: field === "" ? message : `${field}: ${message}`,
    ...(field === "" ? {} : { field }),
  })
}

/** Decodes unknown input with `schema`, failing with a `CaptureError` naming the path at fault. */
export const decodeUnknown =
  <S extends Schema.Codec<unknown, unknown, never, never>>(schema: S) =>
  (input: unknown): Result.Result<S["Type"], CaptureError> => {
    const result = Schema.decodeUnknownResult(schema)(input, { onExcessProperty: "ignore" })
    return Result.mapError(result, toCaptureError)
  }

const utf8 = new TextDecoder()

/**
 * Decodes JSON text or UTF-8 bytes (a NATS message's or a KV entry's `data`) with `schema`. Never
 * throws: text that is not JSON fails with `invalid_json`, a wrong shape names the path at fault.
 *
 * @example
 * const decodeEvent = decodeJson(SessionEvent)
 * const event = decodeEvent(message.data) // Result<SessionEvent, CaptureError>
 */
export const decodeJson = <S extends Schema.Codec<unknown, unknown, never, never>>(schema: S) => {
  const decode = decodeUnknown(schema)
  return (input: string | Uint8Array): Result.Result<S["Type"], CaptureError> => {
    let value: unknown
    try {
      value = JSON.parse(typeof input === "string" ? input : utf8.decode(input))
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error)
      return Result.fail(new CaptureError({ error_code: "invalid_json", message: `not JSON: ${reason}` }))
    }
    return decode(value)
  }
}
