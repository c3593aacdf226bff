/**
 * Known speech for transcription tests and benchmarks: sentences spoken by Festival's HTS voice
 * (Debian `festival`, `festvox-us-slt-hts`: `text2wave`), laid out with pauses between them, and
 * cut into MPEG-TS AAC segments the way the recorder cuts a mic (`-f segment`, 2 s, continuous
 * timestamps). Spoken sentences are cached by text, since Festival takes a second or more each.
 */
import { createHash } from "node:crypto"
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { findOnPath } from "@capture/binaries"
import { runToolOk } from "./MediaTools.js"

/** Sentences with known words: the fixed set transcription is measured on. */
export const SPEECH_SENTENCES: ReadonlyArray<string> = [
  "Let's schedule the meeting for Thursday.",
  "The budget discussion is next week.",
  "Please send the report to the team before Friday.",
  "We need to review the quarterly sales numbers.",
  "The new design looks great on the big screen.",
  "Can you share your screen with everyone?",
  "I will call you back in ten minutes.",
  "The project deadline moved to the end of the month.",
]

/** Whether Festival's `text2wave` is installed. */
export const festivalAvailable = (): boolean => findOnPath("text2wave") !== undefined

/** Where a sentence sits in a recording, ms from its first sample. */
export interface SpokenSentence {
  readonly text: string
  readonly startMs: number
  readonly endMs: number
}

/** One recorded segment: its bytes and where it sits, ms from the recording's first sample. */
export interface SpeechSegment {
  readonly index: number
  readonly bytes: Uint8Array
  readonly offsetMs: number
  readonly durationMs: number
}

/** Speech laid out and segmented. */
export interface SpeechRecording {
  /** 16 kHz mono WAV of the whole recording (for calling an engine on the same audio). */
  readonly wav: string
  readonly durationMs: number
  readonly sentences: ReadonlyArray<SpokenSentence>
  readonly segments: ReadonlyArray<SpeechSegment>
}

export interface SpeechOptions {
  /** Silence before the first sentence, ms (default 1,000). */
  readonly leadMs?: number
  /** Silence between sentences, ms (default 1,500). */
  readonly gapMs?: number
  /** Silence after the last one, ms (default 1,500). */
  readonly tailMs?: number
  readonly segmentSeconds?: number
  /** Cache folder (default `<tmp>/capture-speech`). */
  readonly cacheDir?: string
}

const hash = (text: string): string => createHash("sha256").update(text).digest("hex").slice(0, 16)

/** Milliseconds of sound in a PCM WAV (reads its header). */
const wavDurationMs = (file: string): number => {
  const data = readFileSync(file)
  const rate = data.readUInt32LE(24)
  const bytesPerSample = data.readUInt16LE(32)
  const at = data.indexOf("data", 12, "ascii")
  const bytes = at < 0 ? data.length - 44 : data.readUInt32LE(at + 4)
  return (bytes / bytesPerSample / rate) * 1000
}

/** A sentence spoken by Festival into a 16 kHz mono WAV (cached). */
export const speak = async (
  ffmpeg: string,
  text: string,
  cacheDir = join(tmpdir(), "capture-speech"),
): Promise<string> => {
  mkdirSync(cacheDir, { recursive: true })
  const out = join(cacheDir, `${hash(text)}.wav`)
  if (existsSync(out)) return out
  const raw = join(cacheDir, `${hash(text)}.festival.wav`)
  const textFile = join(cacheDir, `${hash(text)}.txt`)
  writeFileSync(textFile, text)
  const text2wave = findOnPath("text2wave")
  if (text2wave === undefined)
    throw new Error("text2wave is not installed (Debian: festival, festvox-us-slt-hts)")
  await runToolOk(text2wave, ["-eval", "(voice_cmu_us_slt_arctic_hts)", textFile, "-o", raw])
  await runToolOk(ffmpeg, [
    "-hide_banner",
    "-v",
    "error",
    "-y",
    "-i",
    raw,
    "-ac",
    "1",
    "-ar",
    "16000",
    "-c:a",
    "pcm_s16le",
    out,
  ])
  return out
}

/**
 * `sentences` spoken one after the other with pauses, as one recording cut into AAC MPEG-TS
 * segments (48 kHz, 128 kbit/s, as the recorder encodes a mic). Cached by its layout.
 */
export const speechRecording = async (
  ffmpeg: string,
  sentences: ReadonlyArray<string>,
  options: SpeechOptions = {},
): Promise<SpeechRecording> => {
  const cacheDir = options.cacheDir ?? join(tmpdir(), "capture-speech")
  const leadMs = options.leadMs ?? 1_000
  const gapMs = options.gapMs ?? 1_500
  const tailMs = options.tailMs ?? 1_500
  const segmentSeconds = options.segmentSeconds ?? 2
  const spoken = await Promise.all(sentences.map((text) => speak(ffmpeg, text, cacheDir)))
  const layout: Array<SpokenSentence> = []
  let at = leadMs
  for (const [i, file] of spoken.entries()) {
    const ms = wavDurationMs(file)
    layout.push({ text: sentences[i] ?? "", startMs: at, endMs: at + ms })
    at += ms + (i === spoken.length - 1 ? tailMs : gapMs)
  }
  const key = hash(JSON.stringify({ sentences, leadMs, gapMs, tailMs, segmentSeconds, v: 1 }))
  const dir = join(cacheDir, `recording-${key}`)
  const wav = join(dir, "speech.wav")
  if (!existsSync(join(dir, "done"))) {
    mkdirSync(dir, { recursive: true })
    // Silence, then each sentence followed by its pause, at 16 kHz mono.
    const inputs: Array<string> = []
    const parts: Array<string> = []
    const silence = (ms: number) => {
      inputs.push("-f", "lavfi", "-t", (ms / 1000).toFixed(3), "-i", "anullsrc=r=16000:cl=mono")
      parts.push(`[${parts.length}:a]`)
    }
    silence(leadMs)
    for (const [i, file] of spoken.entries()) {
      inputs.push("-i", file)
      parts.push(`[${parts.length}:a]`)
      silence(i === spoken.length - 1 ? tailMs : gapMs)
    }
    await runToolOk(ffmpeg, [
      ...["-hide_banner", "-v", "error", "-y", ...inputs],
      ...["-filter_complex", `${parts.join("")}concat=n=${parts.length}:v=0:a=1[out]`, "-map", "[out]"],
      ...["-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", wav],
    ])
    await runToolOk(ffmpeg, [
      ...["-hide_banner", "-v", "error", "-y", "-i", wav],
      ...["-af", "asetpts=STARTPTS+N/SR/TB", "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "1"],
      ...["-f", "segment", "-segment_format", "mpegts", "-segment_time", String(segmentSeconds)],
      ...["-reset_timestamps", "0", "-segment_list", join(dir, "list.csv"), "-segment_list_type", "csv"],
      join(dir, "%08d.ts"),
    ])
    writeFileSync(join(dir, "done"), "")
  }
  const list = readFileSync(join(dir, "list.csv"), "utf8")
    .trim()
    .split("\n")
    .map((line) => line.split(","))
  const segments: Array<SpeechSegment> = readdirSync(dir)
    .filter((name) => name.endsWith(".ts"))
    .sort()
    .map((name, index) => {
      const row = list.find((r) => r[0] === name)
      const start = Number(row?.[1] ?? index * segmentSeconds)
      const end = Number(row?.[2] ?? start + segmentSeconds)
      return {
        index,
        bytes: new Uint8Array(readFileSync(join(dir, name))),
        offsetMs: Math.round(start * 1000),
        durationMs: Math.round((end - start) * 1000),
      }
    })
  return { wav, durationMs: at, sentences: layout, segments }
}

/** The words of a text, lowercased, without punctuation (for recall and word error rate). */
export const wordsOf = (text: string): ReadonlyArray<string> =>
  text
    .toLowerCase()
    .replace(/[^a-z0-9' ]+/g, " ")
    .split(/\s+/)
    .filter((word) => word !== "")

/** Share of `expected`'s words found in `heard` (each counted once). */
export const wordRecall = (expected: string, heard: string): number => {
  const want = wordsOf(expected)
  const pool = [...wordsOf(heard)]
  let found = 0
  for (const word of want) {
    const at = pool.indexOf(word)
    if (at >= 0) {
      found++
      pool.splice(at, 1)
    }
  }
  return want.length === 0 ? 1 : found / want.length
}

/** Word error rate: word-level edit distance over the reference's length. */
export const wordErrorRate = (reference: string, hypothesis: string): number => {
  const ref = wordsOf(reference)
  const hyp = wordsOf(hypothesis)
  let previous = Array.from({ length: hyp.length + 1 }, (_, j) => j)
  for (let i = 1; i <= ref.length; i++) {
    const current = [i]
    for (let j = 1; j <= hyp.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (ref[i - 1] === hyp[j - 1] ? 0 : 1)
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution))
    }
    previous = current
  }
  return ref.length === 0 ? 0 : (previous[hyp.length] ?? 0) / ref.length
}
