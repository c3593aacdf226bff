/**
 * The AI part of a session's history: for each rtstream of the replayed session, its events on
 * the AI results stream (transcription started and stopped, transcript segments, failures, lane
 * moves, indexes and their scenes), in order, as `capture replay` prints them after the session's own events.
 */
import { type AiStore, UnreadableAiEvent } from "@capture/ai"
import type { AiEvent } from "@capture/protocol"

/** One stored AI event. */
export interface AiReplayStep {
  readonly stream_sequence: number
  readonly time: string
  readonly type: AiEvent["type"]
  readonly data: AiEvent["data"]
}

/** An rtstream's AI history; `error` when a message could not be read (the rest is not shown). */
export interface AiReplay {
  readonly rtstream_id: string
  readonly channel_id: string
  readonly events: ReadonlyArray<AiReplayStep>
  readonly error: string | null
}

/** Reads each rtstream's AI history. */
export const replayAi = async (
  store: AiStore,
  rtstreams: ReadonlyArray<{ readonly rtstream_id: string; readonly channel_id: string }>,
): Promise<ReadonlyArray<AiReplay>> => {
  const out: Array<AiReplay> = []
  for (const rtstream of rtstreams) {
    const events: Array<AiReplayStep> = []
    let error: string | null = null
    try {
      for await (const stored of store.read(rtstream.rtstream_id)) {
        events.push({
          stream_sequence: stored.streamSequence,
          time: stored.event.time,
          type: stored.event.type,
          data: stored.event.data,
        })
      }
    } catch (cause) {
      if (!(cause instanceof UnreadableAiEvent)) throw cause
      error = cause.message
    }
    out.push({ ...rtstream, events, error })
  }
  return out
}

const clock = (ms: number): string => new Date(ms).toISOString().slice(11, 23)

/** One AI event as a line: what a reader of the history wants from each type. */
export const formatAiStep = (step: AiReplayStep): string => {
  const head = `  ${step.time}  ${step.type}  (stream message ${step.stream_sequence})`
  const data = step.data as Record<string, unknown>
  switch (step.type) {
    case "TranscriptionStarted":
      return `${head}  engine ${String(data.engine)}`
    case "TranscriptionStopped":
      return `${head}  ${String(data.mode)}`
    case "TranscriptProduced":
      return `${head}  ${data.is_final === true ? "final" : "interim"} #${String(data.utterance)} ${clock(Number(data.start))}–${clock(Number(data.end))} ${JSON.stringify(data.text)}`
    case "TranscriptionFailed":
      return `${head}  #${String(data.utterance)} ${String(data.message)}`
    case "SegmentProcessed":
      return `${head}  segment ${String(data.index)}${data.open === null ? "" : " (an utterance goes on)"}`
    case "SceneIndexCreated":
      return `${head}  ${String(data.kind)} index ${String(data.index_id)} ${JSON.stringify(data.name)} ${JSON.stringify(data.batch)}`
    case "SceneIndexChanged":
      return `${head}  ${String(data.index_id)}${data.status === undefined ? "" : ` ${String(data.status)}`}${data.prompt === undefined ? "" : ` prompt ${JSON.stringify(data.prompt)}`}`
    case "SceneIndexed": {
      const fired = (data.alerts as ReadonlyArray<{ label: string }> | undefined) ?? []
      return `${head}  ${String(data.index_id)} #${String(data.scene)} ${clock(Number(data.start))}–${clock(Number(data.end))} ${JSON.stringify(data.text)}${fired.length === 0 ? "" : ` fires ${fired.map((a) => JSON.stringify(a.label)).join(", ")}`}`
    }
    case "AlertCreated":
      return `${head}  ${String(data.alert_id)} on ${String(data.index_id)} for ${JSON.stringify(data.label)}`
    case "AlertChanged":
      return `${head}  ${String(data.alert_id)} ${data.enabled === true ? "enabled" : "disabled"}`
  }
}

/** An rtstream's AI history as lines (none when it has no AI events). */
export const formatAiReplay = (replay: AiReplay): ReadonlyArray<string> =>
  replay.events.length === 0 && replay.error === null
    ? []
    : [
        `AI ${replay.rtstream_id} (${replay.channel_id}): ${replay.events.length} event(s)`,
        ...replay.events.map(formatAiStep),
        ...(replay.error === null ? [] : [`  cannot read further: ${replay.error}`]),
      ]
