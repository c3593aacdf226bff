/**
 * An audio index's batches of the transcript: its final segments gather (in the rtstream's fold)
 * until the batch holds `value` words, `value` sentences, or spans `value` seconds; then the
 * pipeline stores it as one scene. Without a chat model, a scene's text is the batch's transcript
 * itself. A sentence is an utterance, or a run ended by `.`, `!` or `?` when the engine punctuates.
 */
import type { PendingSpeech, SceneIndexState } from "../store/RtstreamAi.js"

const wordCount = (text: string): number => text.split(/\s+/).filter((word) => word !== "").length
const sentenceCount = (pending: ReadonlyArray<PendingSpeech>): number =>
  Math.max(
    pending.length,
    pending.reduce((n, speech) => n + (speech.text.match(/[.!?](\s|$)/g) ?? []).length, 0),
  )

/** Whether the index's batch is due at `nowMs` (the end of the segment just taken); `ended`: the audio ends here. */
export const audioBatchDue = (index: SceneIndexState, nowMs: number, ended: boolean): boolean => {
  const first = index.pending[0]
  if (first === undefined || !("value" in index.batch)) return false
  if (ended) return true
  const { type, value } = index.batch
  if (type === "word") return index.pending.reduce((n, speech) => n + wordCount(speech.text), 0) >= value
  if (type === "sentence") return sentenceCount(index.pending) >= value
  return nowMs - first.start >= value * 1000
}

/** The batch as one scene: its transcript, from its first word to its last. */
export const audioBatchScene = (
  pending: ReadonlyArray<PendingSpeech>,
): { readonly text: string; readonly start: number; readonly end: number } => ({
  text: pending.map((speech) => speech.text.trim()).join(" "),
  start: Math.min(...pending.map((speech) => speech.start)),
  end: Math.max(...pending.map((speech) => speech.end)),
})
