/**
 * The deterministic alert matcher, used when no chat provider decides: an event's terms are the
 * words of its label and prompt (lowercased, three letters or more, common words dropped); a
 * result fires the alert when every label term is in its text, or at least half of all the terms
 * are. A term matches a word of the text that starts with it, or that it starts with when both
 * share five letters or more ("budget" matches "budgets", "meeting" matches "meetings"). The
 * confidence is the share of terms found.
 */

const STOPWORDS = new Set(
  (
    "the and for are but not you all any can had her was one our out has him his how its may new now " +
    "see two who did get let say she too use with that this from they will would there their what when " +
    "where which while about into than then them these those been being have some such only also just " +
    "over very more most other your yours user users screen shows show showing shown says said talk " +
    "talks talking someone something anything detect detects alert whenever mention mentions mentioned " +
    "discuss discusses discussed discussion appear appears visible"
  ).split(" "),
)

/** The words of a text that can be terms or be matched against them. */
export const wordsForMatching = (text: string): Array<string> =>
  text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []

/** An event's terms. */
export const termsOf = (text: string): Array<string> => [
  ...new Set(wordsForMatching(text).filter((word) => word.length >= 3 && !STOPWORDS.has(word))),
]

const matches = (term: string, word: string): boolean =>
  word === term || (word.startsWith(term) && term.length >= 4) || (term.startsWith(word) && word.length >= 5)

/** Whether `text` fires an event of `label` and `prompt`, how sure, and why. */
export const matchEvent = (
  text: string,
  label: string,
  prompt: string,
): { readonly fires: boolean; readonly confidence: number; readonly explanation: string } => {
  const words = wordsForMatching(text)
  const labelTerms = termsOf(label)
  const terms = [...new Set([...labelTerms, ...termsOf(prompt)])]
  const found = terms.filter((term) => words.some((word) => matches(term, word)))
  const confidence = terms.length === 0 ? 0 : found.length / terms.length
  const allLabel = labelTerms.length > 0 && labelTerms.every((term) => found.includes(term))
  const fires = found.length > 0 && (allLabel || confidence >= 0.5)
  return {
    fires,
    confidence: Math.round(confidence * 100) / 100,
    explanation:
      found.length === 0
        ? "none of the event's terms were found"
        : `found ${found.map((term) => JSON.stringify(term)).join(", ")} (${found.length} of ${terms.length} terms)`,
  }
}
