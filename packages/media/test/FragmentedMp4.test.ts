import { describe, expect, it } from "vitest"
import { boxes, childBox, stampFragments } from "../src/index.js"
import { box, concat, fragment, fragmentsOf } from "./fragments.js"

describe("boxes", () => {
  it("lists boxes one after another, inside a box with childBox", () => {
    const file = concat([box("ftyp", new Uint8Array(4)), box("moov", box("mvhd", new Uint8Array(8)))])
    expect(boxes(file).map((b) => [b.type, b.start, b.size])).toEqual([
      ["ftyp", 0, 12],
      ["moov", 12, 24],
    ])
    const moov = boxes(file)[1]
    expect(moov === undefined ? undefined : childBox(file, moov, "mvhd")).toMatchObject({
      start: 20,
      size: 16,
    })
  })

  it("reads a 64-bit size and a last box that runs to the end", () => {
    const large = new Uint8Array(24)
    const view = new DataView(large.buffer)
    view.setUint32(0, 1)
    large.set([0x6d, 0x64, 0x61, 0x74], 4) // mdat
    view.setBigUint64(8, 24n)
    const open = concat([new Uint8Array([0, 0, 0, 0, 0x66, 0x72, 0x65, 0x65]), new Uint8Array(5)]) // free, size 0
    expect(boxes(concat([large, open])).map((b) => [b.type, b.size, b.headerSize])).toEqual([
      ["mdat", 24, 16],
      ["free", 13, 8],
    ])
  })

  it("refuses a box that claims more bytes than there are", () => {
    const truncated = box("moof", new Uint8Array(16)).subarray(0, 20)
    expect(() => boxes(truncated)).toThrow(/malformed box moof at 0/)
  })
})

describe("stampFragments", () => {
  it("numbers a piece's fragments from its place, on its track, keeping their time offsets", () => {
    for (const version of [0, 1] as const) {
      const piece = concat([
        fragment(0, "a", version),
        fragment(1024, "b", version),
        fragment(2048, "c", version),
      ])
      const stamped = stampFragments(piece, { sequence: 7, trackId: 2, baseDecodeTime: 90_000 })
      expect(fragmentsOf(stamped)).toEqual([
        { sequence: 7, track: 2, time: 90_000, data: "a" },
        { sequence: 8, track: 2, time: 91_024, data: "b" },
        { sequence: 9, track: 2, time: 92_048, data: "c" },
      ])
      // A copy: the stored piece stays as it was.
      expect(fragmentsOf(piece)[0]).toEqual({ sequence: 1, track: 1, time: 0, data: "a" })
    }
  })

  it("takes the first fragment's decode time as the piece's zero", () => {
    const piece = concat([fragment(5_000, "a"), fragment(6_000, "b")])
    const stamped = stampFragments(piece, { sequence: 1, trackId: 1, baseDecodeTime: 0 })
    expect(fragmentsOf(stamped).map((f) => f.time)).toEqual([0, 1_000])
  })

  it("refuses a decode time a version 0 tfdt cannot hold", () => {
    expect(() =>
      stampFragments(fragment(0, "a", 0), { sequence: 1, trackId: 1, baseDecodeTime: 2 ** 32 }),
    ).toThrow(/does not fit a version 0 tfdt/)
  })
})
