import { describe, expect, it } from "vitest"
import { transcriptTimestamps } from "../src/index.js"

// Two utterances, the first punctuated into two sentences, given out of order.
const UTTERANCES = [
  { start: 10, end: 12, text: "send the report" },
  { start: 2, end: 5, text: "Hello there. The budget is next week." },
]

describe("transcript timestamps", () => {
  it("times each word by its share of its utterance's letters, in time order", () => {
    const { text, timestamps } = transcriptTimestamps(UTTERANCES, "word", 1)
    expect(text).toBe("Hello there. The budget is next week. send the report")
    expect(timestamps.map((t) => t.text)).toEqual(text.split(" "))
    // "Hello" is 6 of the first utterance's 38 units (letters plus a space each): 5 of 38 of 3 s without its space.
    expect(timestamps[0]).toEqual({ start: 2, end: 2.395, text: "Hello", word: "Hello" })
    // The last word ends with its utterance.
    expect(timestamps[6]).toEqual({ start: 4.526, end: 5, text: "week.", word: "week." })
    expect(timestamps[7]).toEqual({ start: 10, end: 10.5, text: "send", word: "send" })
    for (const [a, b] of timestamps.slice(0, -1).map((t, i) => [t, timestamps[i + 1]] as const))
      expect(a.end).toBeLessThanOrEqual(b?.start ?? 0)
  })

  it("groups words, sentences and seconds `length` at a time", () => {
    expect(transcriptTimestamps(UTTERANCES, "word", 3).timestamps.map((t) => t.text)).toEqual([
      "Hello there. The",
      "budget is next",
      "week. send the",
      "report",
    ])
    const sentences = transcriptTimestamps(UTTERANCES, "sentence", 1).timestamps
    expect(sentences).toEqual([
      { start: 2, end: 2.947, text: "Hello there.", word: "Hello there." },
      { start: 3.026, end: 5, text: "The budget is next week.", word: "The budget is next week." },
      { start: 10, end: 12, text: "send the report", word: "send the report" },
    ])
    expect(transcriptTimestamps(UTTERANCES, "sentence", 2).timestamps.map((t) => t.text)).toEqual([
      "Hello there. The budget is next week.",
      "send the report",
    ])
    // Windows of 4 s from 0: [0, 4) holds the words starting before 4 s, [4, 8) the rest of the first.
    const windows = transcriptTimestamps(UTTERANCES, "time", 4).timestamps
    expect(windows.map((t) => t.text)).toEqual([
      "Hello there. The budget is",
      "next week.",
      "send the report",
    ])
  })

  it("keeps the words overlapping a range, and nothing when none does", () => {
    const { text } = transcriptTimestamps(UTTERANCES, "word", 1, 10.6, 11)
    expect(text).toBe("the")
    expect(transcriptTimestamps(UTTERANCES, "word", 1, 6, 9)).toEqual({ text: "", timestamps: [] })
    expect(transcriptTimestamps([], "sentence", 1)).toEqual({ text: "", timestamps: [] })
  })
})
