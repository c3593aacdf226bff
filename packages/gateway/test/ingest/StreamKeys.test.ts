import { randomBytes } from "node:crypto"
import { describe, expect, it } from "vitest"
import { StreamKeys } from "../../src/ingest/StreamKeys.js"

describe("StreamKeys", () => {
  const deploymentKey = randomBytes(32)
  const keys = new StreamKeys(deploymentKey, "rtmp")

  it("opens the session it was issued for", () => {
    expect(keys.sessionOf(keys.keyFor("cap-abc_1"))).toBe("cap-abc_1")
  })

  it("refuses another session's id under a key, another deployment's key and garbage", () => {
    const issued = keys.keyFor("cap-one")
    const mac = issued.slice(issued.indexOf(".") + 1)
    expect(keys.sessionOf(`cap-two.${mac}`)).toBeUndefined()
    expect(keys.sessionOf(new StreamKeys(randomBytes(32), "rtmp").keyFor("cap-one"))).toBeUndefined()
    for (const garbage of ["", ".", "cap-one", "cap-one.", `../x.${mac}`, `${issued}x`]) {
      expect(keys.sessionOf(garbage)).toBeUndefined()
    }
  })

  it("keeps purposes apart: a session's RTMP stream key is not its WHIP token", () => {
    const whip = new StreamKeys(deploymentKey, "whip")
    expect(whip.sessionOf(keys.keyFor("cap-one"))).toBeUndefined()
    expect(whip.sessionOf(whip.keyFor("cap-one"))).toBe("cap-one")
  })
})
