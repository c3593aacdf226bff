/**
 * What the pipeline asks a chat model: describe a visual index's batch of frames, answer an
 * audio index's prompt over a batch of transcript, and decide whether a result is an alert's
 * event (a yes/no with a confidence, asked for as JSON and read leniently: models wrap JSON in
 * prose or code fences, or write `"yes"` for `true`).
 */
import type { ChatImage, ChatModel } from "./ChatModel.js"
import { EngineError } from "./TranscriptionEngine.js"

/** The longest text stored for a result. */
const MAX_LENGTH = 4_000

const clip = (text: string): string => (text.length > MAX_LENGTH ? `${text.slice(0, MAX_LENGTH - 1)}…` : text)

/** A visual index's scene: the index's prompt over the frames sent, in order. */
export const describeFrames = async (
  chat: ChatModel,
  prompt: string,
  images: ReadonlyArray<ChatImage>,
  seconds: number,
): Promise<string> =>
  clip(
    await chat.complete({
      system:
        "You index a screen recording. Answer the user's request about the frames in a few plain sentences, " +
        "naming the application, window titles and the words that matter on screen. No preamble.",
      text: `${prompt}\n\n(${images.length} frame${images.length === 1 ? "" : "s"} from ${seconds} s of the screen, in order.)`,
      images,
    }),
  )

/** An audio index's scene: the index's prompt over a batch of transcript. */
export const answerOverTranscript = async (
  chat: ChatModel,
  prompt: string,
  transcript: string,
): Promise<string> =>
  clip(
    await chat.complete({
      system:
        "You index live speech. Answer the user's request about the transcript in a few plain sentences. No preamble.",
      text: `${prompt}\n\nTranscript:\n"""\n${transcript}\n"""`,
    }),
  )

/** A chat model's decision on an event. */
export interface EventVerdict {
  readonly triggered: boolean
  /** 0–1. */
  readonly confidence: number
  readonly explanation: string
}

/** Whether `text` (what a result saw or heard) is the event of `label` and `prompt`. */
export const decideEvent = async (
  chat: ChatModel,
  event: { readonly label: string; readonly prompt: string },
  text: string,
  kind: "visual" | "audio",
): Promise<EventVerdict> => {
  const answer = await chat.complete({
    system:
      "You decide whether an event happened. Reply with one JSON object and nothing else: " +
      '{"triggered": true or false, "confidence": a number from 0 to 1, "explanation": "one short sentence"}.',
    text:
      `Event: ${event.label}\nWhat to look for: ${event.prompt}\n\n` +
      `${kind === "visual" ? "What the screen showed" : "What was said"}:\n"""\n${text}\n"""`,
    json: true,
  })
  const verdict = parseVerdict(answer)
  if (verdict === undefined) {
    throw new EngineError(`the model's answer is not a verdict: ${answer.slice(0, 300)}`, true)
  }
  return verdict
}

const truthy = (value: unknown): boolean | undefined => {
  if (typeof value === "boolean") return value
  if (typeof value === "string") {
    const word = value.trim().toLowerCase()
    if (word === "true" || word === "yes") return true
    if (word === "false" || word === "no") return false
  }
  return undefined
}

/**
 * A verdict read from a model's answer: the first JSON object in it (fences and prose around it
 * ignored) with a boolean-like `triggered`; `confidence` a number or numeric string, clamped to
 * 0–1 (a percentage is scaled), 1 or 0 by the verdict when absent. Undefined when there is none.
 */
export const parseVerdict = (answer: string): EventVerdict | undefined => {
  for (let from = answer.indexOf("{"); from >= 0; from = answer.indexOf("{", from + 1)) {
    for (let to = answer.lastIndexOf("}"); to > from; to = answer.lastIndexOf("}", to - 1)) {
      let parsed: unknown
      try {
        parsed = JSON.parse(answer.slice(from, to + 1))
      } catch {
        continue
      }
      if (typeof parsed !== "object" || parsed === null) continue
      const fields = parsed as { triggered?: unknown; confidence?: unknown; explanation?: unknown }
      const triggered = truthy(fields.triggered)
      if (triggered === undefined) continue
      const given = typeof fields.confidence === "string" ? Number(fields.confidence) : fields.confidence
      let confidence = typeof given === "number" && Number.isFinite(given) ? given : triggered ? 1 : 0
      if (confidence > 1 && confidence <= 100) confidence /= 100
      return {
        triggered,
        confidence: Math.round(Math.min(1, Math.max(0, confidence)) * 100) / 100,
        explanation: typeof fields.explanation === "string" ? fields.explanation.trim().slice(0, 500) : "",
      }
    }
  }
  return undefined
}
