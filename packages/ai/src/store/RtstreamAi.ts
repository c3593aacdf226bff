/**
 * An rtstream's AI state: its history on the AI stream folded. Pure: the pipeline, the API and
 * replay fold the same events to the same state.
 */
import type {
  AiEvent,
  AiRouting,
  AlertId,
  DetectionEventId,
  IndexBatch,
  OpenUtterance,
  SceneIndexId,
  SceneIndexKind,
  SceneIndexStatus,
  TranscriptionEngineName,
  TranscriptionStatus,
  VisualLane,
} from "@capture/protocol"

/** Transcription as the latest start or stop left it. */
export interface TranscriptionState {
  readonly status: TranscriptionStatus
  readonly engine: TranscriptionEngineName | null
  readonly requestedEngine: string | null
  readonly routing: AiRouting | null
  readonly stopMode: "graceful" | "force" | null
  /** `recording`: the stored segments are being (or were) transcribed after the fact, by a job. */
  readonly source: "live" | "recording"
}

/** An index of the rtstream as its creation and later changes left it. */
export interface SceneIndexState {
  readonly indexId: SceneIndexId
  readonly kind: SceneIndexKind
  readonly name: string
  readonly prompt: string
  readonly extractionType: string
  readonly extractionConfig: { readonly [key: string]: unknown }
  readonly batch: IndexBatch
  readonly modelName: string | null
  /** The chat model its results are asked of (`model_name` resolved); null: the worker's default. */
  readonly chatModel: string | null
  readonly routing: AiRouting
  readonly status: SceneIndexStatus
  /** Scenes stored: the next scene number. */
  readonly scenes: number
  /** The last scene's text: what a chat model's next scene repeats when the screen stayed still. */
  readonly lastText: string | null
  /** An audio index's batch so far: the final transcript segments since its last scene. */
  readonly pending: ReadonlyArray<PendingSpeech>
}

/** An alert on one of the rtstream's indexes. */
export interface AlertState {
  readonly alertId: AlertId
  readonly indexId: SceneIndexId
  readonly eventId: DetectionEventId
  readonly label: string
  readonly prompt: string
  readonly callbackUrl: string | null
  readonly routing: AiRouting
  readonly enabled: boolean
}

/** A final transcript segment waiting in an audio index's batch. */
export interface PendingSpeech {
  readonly text: string
  readonly start: number
  readonly end: number
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
  /** Its indexes, oldest first. */
  readonly indexes: ReadonlyArray<SceneIndexState>
  /** A display's running visual indexes, where the last segment taken left each. */
  readonly visual: ReadonlyArray<VisualLane>
  /** Alerts on its indexes, oldest first. */
  readonly alerts: ReadonlyArray<AlertState>
}

/** Whether any visual index of the rtstream runs: the display's lane takes segments. */
export const visualActive = (state: RtstreamAi): boolean =>
  state.indexes.some((index) => index.kind === "visual" && index.status === "connected")

const withIndex = (
  state: RtstreamAi,
  indexId: string,
  change: (index: SceneIndexState) => SceneIndexState,
): ReadonlyArray<SceneIndexState> =>
  state.indexes.map((index) => (index.indexId === indexId ? change(index) : index))

/**
 * A visual index starting while none ran (re)activates the display's lane: it begins again at
 * whatever segment comes next, under a new epoch.
 */
const activating = (before: RtstreamAi, after: RtstreamAi, streamSequence: number): Partial<RtstreamAi> =>
  !visualActive(before) && visualActive(after) ? { nextIndex: null, open: null, epoch: streamSequence } : {}

export const emptyRtstreamAi = (rtstreamId: string): RtstreamAi => ({
  rtstreamId,
  lastSequence: 0,
  transcription: {
    status: "inactive",
    engine: null,
    requestedEngine: null,
    routing: null,
    stopMode: null,
    source: "live",
  },
  nextIndex: null,
  open: null,
  utterances: 0,
  utterancesAtLane: 0,
  epoch: 0,
  indexes: [],
  visual: [],
  alerts: [],
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
          source: event.data.source ?? "live",
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
    case "TranscriptProduced": {
      if (!event.data.is_final) return next
      const { text, start, end } = event.data
      return {
        ...next,
        utterances: Math.max(state.utterances, event.data.utterance),
        // Each running audio index batches the finals (folded, so every worker batches alike).
        indexes: state.indexes.some((index) => index.kind === "audio" && index.status === "connected")
          ? state.indexes.map((index) =>
              index.kind === "audio" && index.status === "connected"
                ? { ...index, pending: [...index.pending, { text, start, end }] }
                : index,
            )
          : state.indexes,
      }
    }
    case "TranscriptionFailed":
      return { ...next, utterances: Math.max(state.utterances, event.data.utterance) }
    case "SegmentProcessed":
      return {
        ...next,
        nextIndex: event.data.index + 1,
        open: event.data.open,
        utterances: Math.max(state.utterances, event.data.utterances),
        utterancesAtLane: event.data.utterances,
        visual: event.data.visual ?? state.visual,
      }
    case "SceneIndexCreated": {
      const d = event.data
      const created: RtstreamAi = {
        ...next,
        indexes: [
          ...state.indexes,
          {
            indexId: d.index_id,
            kind: d.kind,
            name: d.name,
            prompt: d.prompt,
            extractionType: d.extraction_type,
            extractionConfig: d.extraction_config,
            batch: d.batch,
            modelName: d.model_name,
            chatModel: d.chat_model ?? null,
            routing: d.routing,
            status: "connected",
            scenes: 0,
            lastText: null,
            pending: [],
          },
        ],
      }
      return { ...created, ...activating(state, created, streamSequence) }
    }
    case "SceneIndexChanged": {
      const d = event.data
      const restarting = d.status === "connected"
      const changed: RtstreamAi = {
        ...next,
        indexes: withIndex(state, d.index_id, (index) => ({
          ...index,
          ...(d.status !== undefined ? { status: d.status, pending: [] } : {}),
          ...(d.prompt !== undefined ? { prompt: d.prompt } : {}),
          ...(d.routing !== undefined ? { routing: d.routing } : {}),
        })),
        // A stopped or restarted index starts a new scene grid when it next runs.
        visual:
          d.status === undefined ? state.visual : state.visual.filter((lane) => lane.index_id !== d.index_id),
      }
      return restarting ? { ...changed, ...activating(state, changed, streamSequence) } : changed
    }
    case "AlertCreated": {
      const d = event.data
      return {
        ...next,
        alerts: [
          ...state.alerts,
          {
            alertId: d.alert_id,
            indexId: d.index_id,
            eventId: d.event_id,
            label: d.label,
            prompt: d.prompt,
            callbackUrl: d.callback_url,
            routing: d.routing,
            enabled: true,
          },
        ],
      }
    }
    case "AlertChanged":
      return {
        ...next,
        alerts: state.alerts.map((alert) =>
          alert.alertId === event.data.alert_id ? { ...alert, enabled: event.data.enabled } : alert,
        ),
      }
    case "SceneIndexed":
      return {
        ...next,
        indexes: withIndex(state, event.data.index_id, (index) => ({
          ...index,
          scenes: Math.max(index.scenes, event.data.scene + 1),
          lastText: event.data.text,
          pending: index.pending.filter((speech) => speech.end > event.data.end),
        })),
      }
  }
}
