import { randomBytes } from "node:crypto"
import { describe, expect, it } from "vitest"
import { StreamKeys } from "../../src/ingest/StreamKeys.js"

describe("StreamKeys", () => {
  const keys = new StreamKeys(randomBytes(32))

  it("opens the session it was issued for", () => {
    expect(keys.sessionOf(keys.keyFor("cap-abc_1"))).toBe("cap-abc_1")
  })

  it("refuses another session's id under a key, another deployment's key and garbage", () => {
    const issued = keys.keyFor("cap-one")
    const mac = issued.slice(issued.indexOf(".") + 1)
    expect(keys.sessionOf(`cap-two.${mac}`)).toBeUndefined()
    expect(keys.sessionOf(new StreamKeys(randomBytes(32)).keyFor("cap-one"))).toBeUndefined()
    for (const garbage of ["", ".", "cap-one", "cap-one.", `../x.${mac}`, `${issued}x`]) {
      expect(keys.sessionOf(garbage)).toBeUndefined()
    }
  })
})
