/** Shared property: a schema's values survive encode → JSON → decode unchanged. */
import { isDeepStrictEqual } from "node:util"
import { Arbitrary, Effect, Schema } from "effect"
import { expect } from "vitest"

/**
 * Checks over generated values that `decode(encode(x))` equals `x` and that the JSON wire form is
 * stable (`encode(decode(JSON.parse(wire)))` serialises to `wire`). Returns every value generated.
 */
export const checkRoundTrip = async <S extends Schema.Codec<unknown, unknown, never, never>>(
  schema: S,
  runs = 300,
): Promise<ReadonlyArray<S["Type"]>> => {
  const encode = Schema.encodeSync(schema)
  const decode = Schema.decodeUnknownSync(schema)
  const seen: Array<S["Type"]> = []
  const property = (value: S["Type"]): boolean => {
    seen.push(value)
    try {
      const encoded = encode(value)
      // Generated objects may have a null prototype; structuredClone makes both sides plain.
      if (!isDeepStrictEqual(structuredClone(decode(encoded)), structuredClone(value))) return false
      const wire = JSON.stringify(encoded)
      return JSON.stringify(encode(decode(JSON.parse(wire)))) === wire
    } catch {
      return false
    }
  }
  const result = await Effect.runPromise(Arbitrary.checkEffect(Arbitrary.schema(schema), property, { runs }))
  expect(Arbitrary.formatCheckFailure(result)).toBeUndefined()
  return seen
}
