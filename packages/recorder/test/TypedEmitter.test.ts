import { describe, expect, it } from "vitest"
import { TypedEmitter } from "../src/TypedEmitter.js"

describe("TypedEmitter", () => {
  it("delivers typed payloads, once and off, and isolates throwing listeners", async () => {
    const failures: Array<[unknown, string]> = []
    const emitter = new TypedEmitter<{ tick: number; error: string }>((error, event) =>
      failures.push([error, event]),
    )
    const ticks: number[] = []
    const off = emitter.on("tick", (n) => ticks.push(n))
    emitter.once("tick", (n) => ticks.push(n * 10))
    emitter.on("tick", () => {
      throw new Error("boom")
    })
    const next = emitter.next("tick")
    emitter.emit("tick", 1)
    off()
    emitter.emit("tick", 2)
    expect(ticks).toEqual([1, 10])
    expect(await next).toBe(1)
    expect(failures.map(([error, event]) => [(error as Error).message, event])).toEqual([
      ["boom", "tick"],
      ["boom", "tick"],
    ])
    // An error event without listeners is just dropped.
    expect(() => emitter.emit("error", "nobody listens")).not.toThrow()
  })
})
