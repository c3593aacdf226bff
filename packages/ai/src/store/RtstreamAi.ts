/**
 * An rtstream's AI state: its history on the AI stream folded. Pure: the pipeline, the API and
 * replay fold the same events to the same state.
 */
import type {
  AiEvent,
  AiRouting,
  OpenUtterance,
  TranscriptionEngineName,
  TranscriptionStatus,
} from "@capture/protocol"

/** Transcription as the latest start or stop left it. */
export interface TranscriptionState {
  readonly status: TranscriptionStatus
  readonly engine: TranscriptionEngineName | null
  readonly requestedEngine: string | null
  readonly routing: AiRouting | null
  readonly stopMode: "graceful" | "force" | null
}

export interface RtstreamAi {
  readonly rtstreamId: string
  /** Stream sequence of the last event folded (0: none). */
  readonly lastSequence: number
  readonly transcription: TranscriptionState
  /** The next media segment the lane takes; null: whichever comes first (nothing taken since the start). */
  readonly nextIndex: number | null
  /** Speech still going at the end of the last segment taken. */
  readonly open: OpenUtterance | null
  /** The highest utterance number done (transcribed or failed). */
  readonly utterances: number
  /** Utterance numbers used when the last segment was taken: the next segment's are numbered after it. */
  readonly utterancesAtLane: number
  /** Stream sequence of the start that (re)activated the lane: part of the lane's message ids. */
  readonly epoch: number
}

export const emptyRtstreamAi = (rtstreamId: string): RtstreamAi => ({
  rtstreamId,
  lastSequence: 0,
  transcription: { status: "inactive", engine: null, requestedEngine: null, routing: null, stopMode: null },
  nextIndex: null,
  open: null,
  utterances: 0,
  utterancesAtLane: 0,
  epoch: 0,
})

/** `state` after `event`, stored at `streamSequence`. */
export const foldAiEvent = (state: RtstreamAi, event: AiEvent, streamSequence: number): RtstreamAi => {
  const next = { ...state, lastSequence: streamSequence }
  switch (event.type) {
    case "TranscriptionStarted": {
      const restarting = state.transcription.status !== "active"
      return {
        ...next,
        transcription: {
          status: "active",
          engine: event.data.engine,
          requestedEngine: event.data.requested_engine,
          routing: event.data.routing,
          stopMode: null,
        },
        // A lane stopped earlier starts again at whatever segment comes next.
        ...(restarting ? { nextIndex: null, open: null, epoch: streamSequence } : {}),
      }
    }
    case "TranscriptionStopped":
      return {
        ...next,
        transcription: { ...state.transcription, status: "stopped", stopMode: event.data.mode },
      }
    case "TranscriptProduced":
      return event.data.is_final
        ? { ...next, utterances: Math.max(state.utterances, event.data.utterance) }
        : next
    case "TranscriptionFailed":
      return { ...next, utterances: Math.max(state.utterances, event.data.utterance) }
    case "SegmentProcessed":
      return {
        ...next,
        nextIndex: event.data.index + 1,
        open: event.data.open,
        utterances: Math.max(state.utterances, event.data.utterances),
        utterancesAtLane: event.data.utterances,
      }
  }
}
