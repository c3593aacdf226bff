/**
 * Durations as a person types them on a command line (`30s`, `1m30s`, `1.5m`, `500ms`, `2h`).
 */

const units: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }

/**
 * Parses a duration into milliseconds. A bare number means seconds (`--duration 30` is 30 s).
 *
 * @example parseDuration("1m30s") // 90_000
 */
export const parseDuration = (input: string): number => {
  const text = input.trim()
  if (/^\d+(?:\.\d+)?$/.test(text)) return checkPositive(Math.round(Number(text) * 1_000), input)
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h)/y
  let millis = 0
  let offset = 0
  while (offset < text.length) {
    part.lastIndex = offset
    const match = part.exec(text)
    if (match === null) break
    millis += Number(match[1]) * (units[match[2] ?? "s"] ?? 1)
    offset = part.lastIndex
  }
  if (offset === 0 || offset !== text.length) {
    throw new Error(`"${input}" is not a duration (e.g. 30s, 1m30s, 1.5m, 500ms; a bare number is seconds)`)
  }
  return checkPositive(Math.round(millis), input)
}

const checkPositive = (millis: number, input: string): number => {
  if (millis <= 0) throw new Error(`duration must be positive: "${input}"`)
  return millis
}

/** `mm:ss`, or `h:mm:ss` from an hour on, for progress lines. */
export const formatElapsed = (millis: number): string => {
  const total = Math.max(0, Math.floor(millis / 1_000))
  const hours = Math.floor(total / 3_600)
  const minutes = Math.floor((total % 3_600) / 60)
  const seconds = total % 60
  const mmss = `${String(minutes).padStart(2, "0")}:${String(seconds).padStart(2, "0")}`
  return hours > 0 ? `${hours}:${mmss}` : mmss
}
