/**
 * The local engine's description of a scene: the text read on screen, as a sentence a person (or
 * a search) can use. Its first line is usually a window title or a heading, so it leads.
 */

/** The longest description stored. */
const MAX_LENGTH = 2_000

/** `Screen shows "<first line>": <the other lines>`, or `Screen shows "<line>"` for one line. */
export const describeScreen = (lines: ReadonlyArray<string>): string => {
  const [first, ...rest] = lines
  if (first === undefined) return ""
  const text = rest.length === 0 ? `Screen shows "${first}"` : `Screen shows "${first}": ${rest.join("; ")}`
  return text.length > MAX_LENGTH ? `${text.slice(0, MAX_LENGTH - 1)}…` : text
}
