/**
 * A transcript as VideoDB's `word_timestamps`: the engines time utterances, not words, so each
 * utterance's words share its time in proportion to their length (a word of twice the letters
 * lasts twice as long), then are grouped by `word`, `sentence` or `time`, `length` at a time.
 * A sentence ends at an utterance's end or a word ending in `.`, `!` or `?` (as audio indexes
 * count them).
 */
import type { TranscriptSegmenter, TranscriptTimestamp } from "@capture/protocol"

/** A timed stretch of speech: seconds on any clock. */
export interface TimedUtterance {
  readonly start: number
  readonly end: number
  readonly text: string
}

interface TimedWord {
  readonly start: number
  readonly end: number
  readonly text: string
  /** The last word of a sentence. */
  readonly endsSentence: boolean
}

const round = (seconds: number) => Math.round(seconds * 1000) / 1000

/** An utterance's words, each given a share of its time by its length (counting the space after it). */
const wordsOf = (utterance: TimedUtterance): Array<TimedWord> => {
  const words = utterance.text.split(/\s+/).filter((word) => word.length > 0)
  const weight = words.reduce((sum, word) => sum + word.length + 1, 0)
  const perUnit = (utterance.end - utterance.start) / Math.max(1, weight)
  let at = utterance.start
  return words.map((word, i) => {
    const start = at
    at += (word.length + 1) * perUnit
    const last = i === words.length - 1
    return {
      start: round(start),
      end: round(last ? utterance.end : at - perUnit),
      text: word,
      endsSentence: last || /[.!?]$/.test(word),
    }
  })
}

const joined = (words: ReadonlyArray<TimedWord>): TranscriptTimestamp => {
  const text = words.map((word) => word.text).join(" ")
  return { start: words[0]?.start ?? 0, end: words.at(-1)?.end ?? 0, text, word: text }
}

/** Runs of consecutive words: a new run wherever `startsRun` says. */
const runs = (
  words: ReadonlyArray<TimedWord>,
  startsRun: (word: TimedWord, run: ReadonlyArray<TimedWord>) => boolean,
) => {
  const out: Array<Array<TimedWord>> = []
  for (const word of words) {
    const run = out.at(-1)
    if (run === undefined || startsRun(word, run)) out.push([word])
    else run.push(word)
  }
  return out
}

/**
 * The words said within [from, to] (a word overlapping it counts), grouped: `length` words,
 * `length` sentences, or the words starting in each `length`-second window from 0. Utterances
 * are taken in time order.
 */
export const transcriptTimestamps = (
  utterances: ReadonlyArray<TimedUtterance>,
  segmenter: TranscriptSegmenter,
  length: number,
  from = 0,
  to = Number.POSITIVE_INFINITY,
): { readonly text: string; readonly timestamps: ReadonlyArray<TranscriptTimestamp> } => {
  const words = [...utterances]
    .sort((a, b) => a.start - b.start)
    .flatMap(wordsOf)
    .filter((word) => word.end >= from && word.start <= to)
  const groups =
    segmenter === "word"
      ? runs(words, (_, run) => run.length >= length)
      : segmenter === "sentence"
        ? runs(words, (_, run) => run.filter((word) => word.endsSentence).length >= length)
        : runs(
            words,
            (word, run) => Math.floor(word.start / length) !== Math.floor((run[0]?.start ?? 0) / length),
          )
  return { text: words.map((word) => word.text).join(" "), timestamps: groups.map(joined) }
}
