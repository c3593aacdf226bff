/**
 * A speech-to-text engine: audio of one utterance in, its words out. Engines are chosen per
 * server (`CAPTURE_TRANSCRIPTION_ENGINE`) and per call (`engine`); the pipeline retries a failed
 * call and, past its retries, reports the utterance failed on the WebSocket.
 */
import type { TranscriptionEngineName } from "@capture/protocol"

export interface TranscriptionEngine {
  readonly name: TranscriptionEngineName
  /** The words of one utterance (16 kHz mono s16); "" for none. Rejects when the engine fails. */
  readonly transcribe: (pcm: Int16Array) => Promise<string>
  /** Stops what the engine keeps running (a child process, sockets). */
  readonly close: () => Promise<void>
}

/** The engine refused or failed a call; `retryable` when trying again may help. */
export class EngineError extends Error {
  readonly _tag = "EngineError"
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message)
  }
}

/** Engines by name: what a server offers. */
export type Engines = Readonly<Partial<Record<TranscriptionEngineName, TranscriptionEngine>>>

/** Closes every engine. */
export const closeEngines = async (engines: Engines): Promise<void> => {
  await Promise.allSettled(Object.values(engines).map((engine) => engine?.close()))
}
