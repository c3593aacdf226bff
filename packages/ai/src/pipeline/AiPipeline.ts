/**
 * The AI pipeline: a worker any number of processes run (`capture serve --role ai`, and `all`).
 * They share one durable consumer on the media record stream (`<prefix>-ai` on `CAPTURE_MEDIA`),
 * and take each audio rtstream's segments in index order, whichever process gets them:
 *
 * - the lane is the rtstream's AI history (`RtstreamAi`): the next index it takes and the
 *   utterance still open at the end of the last one; a segment ahead of it waits (`later`) until
 *   its predecessor is taken, or skips a gap that stays open past `gapWaitMs`;
 * - a segment's audio, with the open utterance's audio carried from earlier segments, is cut into
 *   utterances by voice activity; each complete one is transcribed and stored as a final
 *   `TranscriptProduced` (id = rtstream + utterance number), the open one gets an interim, and a
 *   `SegmentProcessed` marks the lane's move; every append names the last sequence it saw;
 * - a worker killed mid-segment leaves the record unacknowledged: the next one reloads the lane,
 *   skips the utterances already stored, and finishes the rest, so each is stored once.
 *
 * An engine that keeps failing costs its utterance (a `TranscriptionFailed`, which the WebSocket
 * reports), never the session: recording, ingest and export do not wait on this worker.
 */
import {
  inSpan,
  isWrongLastSequence,
  type Later,
  later,
  type SpanParent,
  startDurableWork,
} from "@capture/jetstream"
import type { MediaStore } from "@capture/media"
import {
  type AiEvent,
  channelKind,
  decodeUnknown,
  type FiredAlert,
  type FrameRef,
  MediaSegment,
  type OpenUtterance,
  RecordingTranscriptionJob,
  type RtstreamId,
  type VisualLane,
} from "@capture/protocol"
import type { SessionReadModel } from "@capture/session-actor"
import { DeliverPolicy, type JsMsg } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/transport-node"
import { matchEvent } from "../alerts/AlertMatcher.js"
import { alertsOf, firedAlert, firedAlerts } from "../alerts/Alerts.js"
import { audioBatchDue, audioBatchScene } from "../audio/AudioBatches.js"
import {
  AudioDecodeError,
  type AudioDecoders,
  concatPcm,
  decodeToPcm,
  msToSamples,
  samplesToMs,
} from "../audio/Pcm.js"
import {
  defaultVoiceActivity,
  detectVoiceActivity,
  type VoiceActivityOptions,
} from "../audio/VoiceActivity.js"
import type { ChatImage, ChatModel } from "../engines/ChatModel.js"
import {
  answerOverTranscript,
  decideEvent,
  describeFrames,
  type EventVerdict,
} from "../engines/ChatPrompts.js"
import { ocrLines, type TextReader } from "../engines/TesseractReader.js"
import { EngineError, type Engines, type TranscriptionEngine } from "../engines/TranscriptionEngine.js"
import type { AiStore } from "../store/AiStore.js"
import { foldAiEvent, type RtstreamAi, type SceneIndexState, visualActive } from "../store/RtstreamAi.js"
import { isTranscribable } from "../Transcription.js"
import { DisplayDecoder } from "../visual/DisplayDecoder.js"
import {
  decodeFrames,
  FrameDecodeError,
  type GreyFrame,
  screenChanged,
  thumbnailOf,
  toPgm,
} from "../visual/Frames.js"
import { describeScreen } from "../visual/ScreenText.js"

export interface AiPipelineOptions {
  readonly media: MediaStore
  readonly store: AiStore
  readonly readModel: SessionReadModel
  readonly engines: Engines
  /** ffmpeg, and faad where installed (`AudioDecoders`). */
  readonly decoders: AudioDecoders
  /** Durable name prefix (the deployment's: `capture`). */
  readonly prefix?: string
  /** Segments handled at once in this process (different rtstreams). */
  readonly parallel?: number
  readonly ackWaitMs?: number
  /** Send interim results (`is_final: false`) for an utterance still open at a segment's end. */
  readonly interim?: boolean
  /** Speech an open utterance must hold before it gets an interim, ms. */
  readonly interimMinMs?: number
  /** Tries per utterance before it is reported failed, and the pause after the first failure (doubling). */
  readonly engineAttempts?: number
  readonly engineRetryDelayMs?: number
  /** How long a segment waits for its predecessor before the lane skips the missing one, ms. */
  readonly gapWaitMs?: number
  readonly voiceActivity?: VoiceActivityOptions
  /**
   * Reads the text on a display's frames for visual indexes (Tesseract): the local description,
   * and the fallback when the chat model fails. With neither this nor `chat`, displays are not indexed.
   */
  readonly textReader?: TextReader
  /**
   * An OpenAI-compatible chat model with image input: describes visual scenes from their frames,
   * answers audio indexes' prompts, decides alerts. Absent: the local engines and the matcher.
   * Its calls are tried `engineAttempts` times, like transcription.
   */
  readonly chat?: ChatModel
  readonly log?: (message: string) => void
}

/** Whether a channel carries frames a visual index reads. */
export const isVisual = (channelId: MediaSegment["channel_id"]): boolean => {
  const kind = channelKind(channelId)
  return kind === "display" || kind === "screen" || kind === "camera"
}

/** Frames per second decoded from a display segment: what the busiest index samples, within 1–5. */
const MIN_FPS = 1
/** Long-lived display decoders kept per worker (each one ffmpeg); the least recently used is ended. */
const MAX_DISPLAY_DECODERS = 32
const MAX_FPS = 5

const decodeRecord = decodeUnknown(MediaSegment)
const decodeJob = decodeUnknown(RecordingTranscriptionJob)

/** A shot's key in the images kept for open scenes. */
const frameKey = (shot: FrameRef): string => `${shot.segment}/${shot.fps}/${shot.position}`

/** The engine a chat model's result names. */
const chatEngineName = (chat: ChatModel | undefined): string => `chat:${chat?.model ?? ""}`

/** PCM of recent segments per rtstream, so a carried utterance is rarely decoded twice. */
const CACHED_SEGMENTS = 16

/** Counters for health and tests. */
export interface AiPipelineStats {
  segments: number
  utterances: number
  failures: number
  /** Frames the visual indexes looked at, and those read by OCR (the screen had changed). */
  frames: number
  reads: number
  /** Chat model calls answered, and those that failed past their retries (the local result was stored instead). */
  chatCalls: number
  chatFailures: number
}

export class AiPipeline {
  readonly stats: AiPipelineStats = {
    segments: 0,
    utterances: 0,
    failures: 0,
    frames: 0,
    reads: 0,
    chatCalls: 0,
    chatFailures: 0,
  }
  private readonly lanes = new Map<string, Promise<unknown>>()
  /** Segments per rtstream queued in this process behind the one being taken. */
  private readonly waiting = new Map<string, number>()
  private readonly states = new Map<string, RtstreamAi>()
  private readonly pcm = new Map<string, Map<number, Int16Array>>()
  private readonly rtstreams = new Map<string, { readonly id: RtstreamId } | null>()
  /** JPEGs of the frames open scenes will send, per rtstream, by `frameKey`. */
  private readonly shotImages = new Map<string, Map<string, Uint8Array>>()
  /**
   * Chat answers by the result (and alert) they are for: a lane that must try a segment again (its
   * history moved under it) does not ask again. Only stored results count as done.
   */
  private readonly chatAnswers = new Map<string, string | EventVerdict>()
  /** A long-lived decoder per display rtstream taken here (segments in order skip ffmpeg's start). */
  private readonly displayDecoders = new Map<string, DisplayDecoder>()
  /** The frames of the segment last decoded per rtstream, for a lane that tries it again. */
  private readonly lastFrames = new Map<
    string,
    { readonly segment: number; readonly fps: number; readonly frames: Array<GreyFrame> }
  >()
  private stopWork: (() => Promise<void>) | undefined
  private stopJobs: (() => Promise<void>) | undefined
  private readonly log: (message: string) => void

  private constructor(private readonly options: AiPipelineOptions) {
    this.log = options.log ?? (() => {})
  }

  /** Starts taking segments from the shared durable consumer. */
  static async start(nc: NatsConnection, options: AiPipelineOptions): Promise<AiPipeline> {
    const pipeline = new AiPipeline(options)
    const work = await startDurableWork(nc, {
      stream: options.media.topology.stream,
      durable: `${options.prefix ?? "capture"}-ai`,
      filterSubject: options.media.topology.subjects,
      // Added to a deployment with history: old recordings are not transcribed after the fact.
      deliverPolicy: DeliverPolicy.New,
      parallel: options.parallel ?? 4,
      ackWaitMs: options.ackWaitMs ?? 30_000,
      retryDelayMs: 1_000,
      decode: (message: JsMsg) => decodeRecord(message.json()),
      handle: (record, message, span) => pipeline.onSegment(record, message, span),
      log: pipeline.log,
    })
    pipeline.stopWork = work.stop
    // Recordings transcribed after the fact: one job per channel, run by whichever worker gets it.
    const jobs = await startDurableWork(nc, {
      stream: options.store.topology.jobsStream,
      durable: `${options.prefix ?? "capture"}-ai-jobs`,
      filterSubject: options.store.topology.jobsSubjects,
      // Each job is a whole recording: a few at a time, beside the live segments.
      parallel: 2,
      ackWaitMs: options.ackWaitMs ?? 30_000,
      retryDelayMs: 1_000,
      decode: (message: JsMsg) => decodeJob(message.json()),
      handle: (job) => pipeline.onRecordingJob(job),
      log: pipeline.log,
    })
    pipeline.stopJobs = jobs.stop
    return pipeline
  }

  async stop(): Promise<void> {
    await this.stopJobs?.()
    await this.stopWork?.()
    await Promise.all([...this.displayDecoders.values()].map((decoder) => decoder.close()))
    this.displayDecoders.clear()
  }

  /**
   * Transcribes a recorded channel's stored segments in index order, from where its lane stands
   * (a worker killed mid-job leaves the lane where it got to; the job, delivered again, goes on
   * from there), through the lane's own appends: two workers on one job store each utterance once.
   * The last segment closes the utterance left open; then the transcription is stopped. A start
   * that is not this job's (a live one, or a stop in between) ends it.
   */
  async onRecordingJob(job: RecordingTranscriptionJob): Promise<void> {
    const rtstreamId = job.rtstream_id
    const records = (await this.options.media.list(job.session_id)).filter(
      (record) => record.channel_id === job.channel_id,
    )
    const last = records.at(-1)
    const ours = (state: RtstreamAi) =>
      state.transcription.status === "active" &&
      state.transcription.source === "recording" &&
      state.epoch === job.start_sequence
    for (const record of records) {
      // The recording is over: its last stored segment ends the channel, whatever the recorder said.
      const taken = record === last ? { ...record, final: true } : record
      const going = await this.inLane(rtstreamId, async () => {
        for (let attempt = 1; ; attempt++) {
          const state = await this.fresh(rtstreamId)
          if (!ours(state)) return false
          if (state.nextIndex !== null && taken.index < state.nextIndex) return true
          try {
            await this.process(
              state,
              taken,
              state.nextIndex !== null && taken.index > state.nextIndex,
              false,
              undefined,
            )
            this.stats.segments++
            return true
          } catch (error) {
            if (!isWrongLastSequence(error) || attempt >= 8) throw error
            this.states.delete(rtstreamId)
          }
        }
      })
      if (!going) return
    }
    for (let attempt = 1; ; attempt++) {
      const state = await this.fresh(rtstreamId)
      if (!ours(state)) return
      try {
        await this.options.store.append(
          {
            type: "TranscriptionStopped",
            id: `${rtstreamId}/recording/${job.start_sequence}/done`,
            rtstream_id: rtstreamId,
            session_id: job.session_id,
            channel_id: job.channel_id,
            time: new Date().toISOString(),
            data: { mode: "graceful" },
          },
          state.lastSequence,
        )
        this.log(`ai: ${rtstreamId}: recording transcribed (${records.length} segments)`)
        return
      } catch (error) {
        if (!isWrongLastSequence(error) || attempt >= 8) throw error
        this.states.delete(rtstreamId)
      }
    }
  }

  /** Runs `work` in the rtstream's lane of this process: after the segments queued before it. */
  private async inLane<T>(rtstreamId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.lanes.get(rtstreamId) ?? Promise.resolve()
    const turn = previous.then(work, work)
    this.lanes.set(rtstreamId, turn)
    try {
      return await turn
    } finally {
      if (this.lanes.get(rtstreamId) === turn) this.lanes.delete(rtstreamId)
    }
  }

  /**
   * Handles one media record; exported for tests that drive the pipeline without a consumer.
   * `parent` (tracing on: the consumer's span, in the trace of the segment's upload) is what the
   * results it stores continue.
   */
  async onSegment(record: MediaSegment, message: JsMsg, parent?: SpanParent): Promise<Later | undefined> {
    const indexesVisual = this.options.textReader !== undefined || this.options.chat !== undefined
    if (!isTranscribable(record.channel_id) && !(isVisual(record.channel_id) && indexesVisual)) return
    const rtstream = await this.rtstreamOf(record)
    if (rtstream === null) return
    // One segment of an rtstream at a time in this process; other processes are held off by the lane.
    const previous = this.lanes.get(rtstream.id) ?? Promise.resolve()
    this.waiting.set(rtstream.id, (this.waiting.get(rtstream.id) ?? 0) + 1)
    const takeTurn = () => {
      const left = (this.waiting.get(rtstream.id) ?? 1) - 1
      if (left > 0) this.waiting.set(rtstream.id, left)
      else this.waiting.delete(rtstream.id)
      return this.take(rtstream.id, record, message, parent)
    }
    const turn = previous.then(takeTurn, takeTurn)
    this.lanes.set(rtstream.id, turn)
    try {
      return await turn
    } finally {
      if (this.lanes.get(rtstream.id) === turn) this.lanes.delete(rtstream.id)
    }
  }

  private async rtstreamOf(record: MediaSegment): Promise<{ readonly id: RtstreamId } | null> {
    const key = `${record.session_id}/${record.channel_id}`
    const known = this.rtstreams.get(key)
    if (known !== undefined && known !== null) return known
    const view = await this.options.readModel.get(record.session_id)
    // An rtstream's `name` is its capture channel (`channel_id` is the SDK's category, `mic`).
    const rtstream = view?.session.rtstreams.find((r) => r.name === record.channel_id)
    // Not activated yet: nothing can have started transcription on it.
    if (rtstream === undefined) return null
    const found = { id: rtstream.rtstream_id }
    this.rtstreams.set(key, found)
    if (this.rtstreams.size > 10_000) this.rtstreams.delete(this.rtstreams.keys().next().value as string)
    return found
  }

  /** The lane's state, read again only when another writer moved it. */
  private async fresh(rtstreamId: string): Promise<RtstreamAi> {
    const cached = this.states.get(rtstreamId)
    const last = await this.options.store.lastSequence(rtstreamId)
    if (cached !== undefined && cached.lastSequence === last) return cached
    const state =
      cached !== undefined && cached.lastSequence < last
        ? await this.options.store.catchUp(cached)
        : await this.options.store.load(rtstreamId)
    this.remember(state)
    return state
  }

  private remember(state: RtstreamAi): void {
    this.states.delete(state.rtstreamId)
    this.states.set(state.rtstreamId, state)
    if (this.states.size > 10_000) this.states.delete(this.states.keys().next().value as string)
  }

  private async take(
    rtstreamId: RtstreamId,
    record: MediaSegment,
    message: JsMsg,
    parent: SpanParent | undefined,
  ): Promise<Later | undefined> {
    const visual = isVisual(record.channel_id)
    for (let attempt = 1; ; attempt++) {
      const state = await this.fresh(rtstreamId)
      const status = state.transcription.status
      if (visual ? !visualActive(state) : status === "inactive") return
      if (state.nextIndex !== null && record.index < state.nextIndex) return
      if (!visual && status === "stopped" && state.open === null) return
      let gap = false
      if (state.nextIndex !== null && record.index > state.nextIndex) {
        // The one before is stored (its record on its way, or with a worker now): wait for it.
        // One that never arrived is skipped once this one has waited `gapWaitMs`.
        const missing = state.nextIndex
        if (await this.options.media.has(record.session_id, record.channel_id, missing)) return later(250)
        const storedMs = message.info.timestampNanos / 1e6
        if (Date.now() - storedMs < (this.options.gapWaitMs ?? 20_000)) return later(500)
        this.log(`ai: ${rtstreamId} skips segments ${missing}–${record.index - 1} (never arrived)`)
        gap = true
      }
      try {
        if (visual) await this.processVisual(state, record, parent)
        else await this.process(state, record, gap, this.options.interim ?? true, parent)
        this.stats.segments++
        return
      } catch (error) {
        // Someone else wrote to the lane (a start or stop, another worker): look again.
        if (!isWrongLastSequence(error) || attempt >= 8) throw error
        this.states.delete(rtstreamId)
      }
    }
  }

  private async process(
    initial: RtstreamAi,
    record: MediaSegment,
    gap: boolean,
    interim: boolean,
    parent: SpanParent | undefined,
  ): Promise<void> {
    const rtstreamId = initial.rtstreamId
    const transcription = initial.transcription
    const engineName = transcription.engine
    const routing = transcription.routing
    if (engineName === null || routing === null) return
    const stopping = transcription.status === "stopped"
    const segmentPcm = stopping ? new Int16Array(0) : await this.segmentPcm(rtstreamId, record, record.index)
    let origin = record.start_ms
    let audio = segmentPcm
    const open = gap ? null : initial.open
    if (open !== null && !(stopping && transcription.stopMode === "force")) {
      const carried = await this.carried(rtstreamId, record, open)
      if (carried !== null) {
        origin = open.start_ms
        audio = concatPcm([carried, segmentPcm])
      }
    }
    const ended = record.final || stopping
    const activity = detectVoiceActivity(audio, ended, this.options.voiceActivity ?? defaultVoiceActivity)
    let state = initial
    const append = async (event: AiEvent) => {
      const sequence = await this.options.store.append(event, state.lastSequence, parent)
      state = foldAiEvent(state, event, sequence)
      this.remember(state)
    }
    const envelope = {
      rtstream_id: rtstreamId as RtstreamId,
      session_id: record.session_id,
      channel_id: record.channel_id,
    }
    const engine = this.options.engines[engineName]
    let utterance = initial.utterancesAtLane
    for (const span of activity.complete) {
      utterance++
      // Stored before this worker (or a predecessor killed mid-segment) got here.
      if (utterance <= initial.utterances) continue
      const start = origin + samplesToMs(span.start)
      const end = origin + samplesToMs(span.end)
      const outcome = await inSpan(
        "ai.transcribe",
        { parent, attributes: { "capture.session_id": record.session_id, "capture.engine": engineName } },
        () => this.transcribe(engine, engineName, audio.subarray(span.start, span.end)),
      )
      const time = new Date().toISOString()
      if (typeof outcome === "string") {
        this.stats.utterances++
        if (outcome === "") continue
        await append({
          type: "TranscriptProduced",
          id: `${rtstreamId}/u/${utterance}`,
          ...envelope,
          time,
          data: {
            utterance,
            is_final: true,
            text: outcome,
            start: Math.round(start),
            end: Math.round(end),
            engine: engineName,
            segment_index: record.index,
            routing,
          },
        })
      } else {
        this.stats.failures++
        this.log(`ai: ${rtstreamId} utterance ${utterance}: ${outcome.message}`)
        await append({
          type: "TranscriptionFailed",
          id: `${rtstreamId}/u/${utterance}`,
          ...envelope,
          time,
          data: {
            utterance,
            segment_index: record.index,
            engine: engineName,
            message: outcome.message,
            start: Math.round(start),
            end: Math.round(end),
            routing,
          },
        })
      }
    }
    let stillOpen: OpenUtterance | null = null
    if (activity.open !== null) {
      const start_ms = origin + samplesToMs(activity.open.start)
      stillOpen = {
        from_index: start_ms >= record.start_ms ? record.index : (open?.from_index ?? record.index),
        start_ms,
        spoken_ms: samplesToMs(activity.open.spoken),
      }
      // An interim is worth its engine time only while the lane keeps up: with the rtstream's
      // next segment already waiting here it would be stale at once, and the finals wait for it.
      const behind = (this.waiting.get(rtstreamId) ?? 0) > 0
      if (interim && !behind && stillOpen.spoken_ms >= (this.options.interimMinMs ?? 600)) {
        // One try: an interim that fails is simply not sent.
        const open = activity.open
        const text = await inSpan(
          "ai.transcribe",
          {
            parent,
            attributes: {
              "capture.session_id": record.session_id,
              "capture.engine": engineName,
              "capture.interim": true,
            },
          },
          async () => engine?.transcribe(audio.subarray(open.start)).catch(() => ""),
        )
        if (text !== undefined && text !== "") {
          await append({
            type: "TranscriptProduced",
            id: `${rtstreamId}/u/${utterance + 1}/interim/${record.index}`,
            ...envelope,
            time: new Date().toISOString(),
            data: {
              utterance: utterance + 1,
              is_final: false,
              text,
              start: Math.round(start_ms),
              end: Math.round(origin + samplesToMs(audio.length)),
              engine: engineName,
              segment_index: record.index,
              routing,
            },
          })
        }
      }
    }
    // Audio indexes: each batch that is due becomes a scene: the chat model's answer to the
    // index's prompt over the batch, or (without one, or when it fails) the transcript itself.
    for (const index of state.indexes) {
      if (index.kind !== "audio" || index.status !== "connected") continue
      if (!audioBatchDue(index, record.start_ms + record.duration_ms, ended)) continue
      const scene = audioBatchScene(index.pending)
      const sceneId = `${rtstreamId}/index/${index.indexId}/scene/${index.scenes}`
      const chat = this.chatFor(index)
      const answer =
        chat === undefined
          ? undefined
          : await this.askChat(sceneId, () => answerOverTranscript(chat, index.prompt, scene.text))
      const described = typeof answer === "string" ? answer : undefined
      const text = described ?? scene.text
      const alerts = await this.evaluateAlerts(state, index, sceneId, text)
      await append({
        type: "SceneIndexed",
        id: sceneId,
        ...envelope,
        time: new Date().toISOString(),
        data: {
          index_id: index.indexId,
          kind: "audio",
          index_name: index.name,
          scene: index.scenes,
          text,
          start: Math.round(scene.start),
          end: Math.round(scene.end),
          engine: described === undefined ? "transcript" : chatEngineName(chat),
          routing: index.routing,
          ...(alerts.length === 0 ? {} : { alerts }),
        },
      })
    }
    await append({
      type: "SegmentProcessed",
      id: `${rtstreamId}/e${initial.epoch}/segment/${record.index}`,
      ...envelope,
      time: new Date().toISOString(),
      data: {
        index: record.index,
        end_ms: record.start_ms + record.duration_ms,
        open: stillOpen,
        utterances: utterance,
      },
    })
  }

  /**
   * A display segment for its visual indexes: each samples `frame_count` frames per scene of
   * `time` seconds on a grid from its origin. A frame counts only when the screen changed since
   * the index's last one (the change detector): the local engine reads it (OCR), else its last
   * text counts again; with a chat model it joins the scene's shots, sent when the scene closes. A
   * scene is stored once the segments reach its end (or the display's last segment arrives); then
   * `SegmentProcessed` carries each index's grid position, open scene and last frame.
   */
  private async processVisual(
    initial: RtstreamAi,
    record: MediaSegment,
    parent: SpanParent | undefined,
  ): Promise<void> {
    const reader = this.options.textReader
    const chat = this.options.chat
    const rtstreamId = initial.rtstreamId as RtstreamId
    const indexes = initial.indexes.filter((index) => index.kind === "visual" && index.status === "connected")
    let state = initial
    const append = async (event: AiEvent) => {
      const sequence = await this.options.store.append(event, state.lastSequence, parent)
      state = foldAiEvent(state, event, sequence)
      this.remember(state)
    }
    const envelope = { rtstream_id: rtstreamId, session_id: record.session_id, channel_id: record.channel_id }
    const segmentEnd = record.start_ms + record.duration_ms
    let fps = MIN_FPS
    for (const index of indexes) {
      if (index.batch.type === "time" && "time" in index.batch) {
        fps = Math.max(fps, Math.min(MAX_FPS, index.batch.frame_count / index.batch.time))
      }
    }
    const frames =
      reader === undefined && chat === undefined
        ? []
        : await this.segmentFrames(rtstreamId, record, record.index, fps, chat !== undefined)
    // A frame read once in this segment is not read again for another index.
    const reads = new Map<number, Promise<Array<string>>>()
    const readFrame = (position: number, frame: GreyFrame): Promise<Array<string>> => {
      let read = reads.get(position)
      if (read === undefined) {
        read = this.readText(rtstreamId, record, toPgm(frame))
        reads.set(position, read)
      }
      return read
    }
    const images = this.shotImagesOf(rtstreamId)
    const lanes: Array<VisualLane> = []
    for (const index of indexes) {
      if (!(index.batch.type === "time" && "time" in index.batch)) continue
      const span = index.batch.time * 1000
      const step = span / index.batch.frame_count
      const previous = initial.visual.find((lane) => lane.index_id === index.indexId)
      let lane: VisualLane = previous ?? {
        index_id: index.indexId,
        origin_ms: record.start_ms,
        scene: 0,
        lines: [],
        thumbnail: "",
        text: "",
      }
      // The index as the scenes stored so far left it.
      const indexNow = () => state.indexes.find((i) => i.indexId === index.indexId) ?? index
      const close = async (scene: number, end: number) => {
        // Stored already (by this worker before a retry, or one killed after it): not again.
        if (scene < indexNow().scenes) return
        const sceneId = `${rtstreamId}/index/${index.indexId}/scene/${scene}`
        const described =
          chat === undefined
            ? { text: describeScreen(lane.lines), engine: "local" }
            : await this.describeScene(
                this.chatFor(index) ?? chat,
                rtstreamId,
                record,
                indexNow(),
                sceneId,
                lane,
              )
        // Nothing read on screen (or nothing to describe it with): no scene.
        if (described === undefined || described.text === "") return
        const alerts = await this.evaluateAlerts(state, index, sceneId, described.text)
        await append({
          type: "SceneIndexed",
          id: sceneId,
          ...envelope,
          time: new Date().toISOString(),
          data: {
            index_id: index.indexId,
            kind: "visual",
            index_name: index.name,
            scene,
            text: described.text,
            start: Math.round(lane.origin_ms + scene * span),
            end: Math.round(Math.min(end, lane.origin_ms + (scene + 1) * span)),
            engine: described.engine,
            routing: index.routing,
            ...(alerts.length === 0 ? {} : { alerts }),
          },
        })
      }
      let thumbnail: Uint8Array | null =
        lane.thumbnail === "" ? null : new Uint8Array(Buffer.from(lane.thumbnail, "base64"))
      const first = Math.max(0, Math.ceil((record.start_ms - lane.origin_ms) / step))
      for (let k = first; frames.length > 0; k++) {
        const at = lane.origin_ms + k * step
        if (at >= segmentEnd) break
        const scene = Math.floor((k * step) / span)
        if (scene > lane.scene) {
          await close(lane.scene, at)
          lane = { ...lane, scene, lines: [], ...(chat === undefined ? {} : { shots: [] }) }
        }
        const position = Math.min(
          frames.length - 1,
          Math.max(0, Math.floor(((at - record.start_ms) * fps) / 1000)),
        )
        const frame = frames[position] as GreyFrame
        this.stats.frames++
        const thumb = thumbnailOf(frame)
        if (!screenChanged(thumbnail, thumb)) {
          // A still screen: its last text counts again; a chat model is not shown it again.
        } else if (chat !== undefined) {
          thumbnail = thumb
          const shot: FrameRef = { segment: record.index, fps, position }
          if (frame.jpeg !== undefined) images.set(frameKey(shot), frame.jpeg)
          lane = {
            ...lane,
            thumbnail: Buffer.from(thumb).toString("base64"),
            shots: [...(lane.shots ?? []), shot],
          }
        } else {
          const lines = await readFrame(position, frame)
          thumbnail = thumb
          lane = { ...lane, thumbnail: Buffer.from(thumb).toString("base64"), text: lines.join("\n") }
        }
        const seen = new Set(lane.lines)
        const added = lane.text === "" ? [] : lane.text.split("\n").filter((line) => !seen.has(line))
        if (added.length > 0) lane = { ...lane, lines: [...lane.lines, ...added].slice(0, 200) }
      }
      // The scene ends with this segment, or the display ends here.
      if (segmentEnd >= lane.origin_ms + (lane.scene + 1) * span || record.final) {
        await close(lane.scene, segmentEnd)
        lane = { ...lane, scene: lane.scene + 1, lines: [], ...(chat === undefined ? {} : { shots: [] }) }
      }
      lanes.push(lane)
    }
    // Only the frames open scenes will still send are kept.
    const kept = new Set(lanes.flatMap((lane) => (lane.shots ?? []).map(frameKey)))
    for (const key of images.keys()) if (!kept.has(key)) images.delete(key)
    await append({
      type: "SegmentProcessed",
      id: `${rtstreamId}/e${initial.epoch}/segment/${record.index}`,
      ...envelope,
      time: new Date().toISOString(),
      data: { index: record.index, end_ms: segmentEnd, open: null, utterances: 0, visual: lanes },
    })
  }

  /** The lines tesseract reads on an image (PGM or JPEG); none when it fails. */
  private readText(rtstreamId: string, record: MediaSegment, image: Uint8Array): Promise<Array<string>> {
    const reader = this.options.textReader
    if (reader === undefined) return Promise.resolve([])
    this.stats.reads++
    return reader.read(image).then(ocrLines, (error: unknown) => {
      this.log(`ai: ${rtstreamId} segment ${record.index}: OCR failed (${String(error)}); frame skipped`)
      return []
    })
  }

  /**
   * A visual scene through the chat model: its shots (the frames where the screen changed) with
   * the index's prompt. A scene whose screen never changed gets the last description again, with
   * no call. When the model fails past its retries, the local engine reads the same frames.
   */
  private async describeScene(
    chat: ChatModel,
    rtstreamId: string,
    record: MediaSegment,
    index: SceneIndexState,
    sceneId: string,
    lane: VisualLane,
  ): Promise<{ readonly text: string; readonly engine: string } | undefined> {
    const images: Array<ChatImage> = []
    for (const shot of lane.shots ?? []) {
      const jpeg = await this.shotImage(rtstreamId, record, shot)
      if (jpeg !== undefined) images.push({ mime: "image/jpeg", bytes: jpeg })
    }
    if (images.length === 0) {
      return index.lastText === null ? undefined : { text: index.lastText, engine: chatEngineName(chat) }
    }
    const seconds = "time" in index.batch ? index.batch.time : 0
    const answer = await this.askChat(sceneId, () => describeFrames(chat, index.prompt, images, seconds))
    if (typeof answer === "string") return { text: answer, engine: chatEngineName(chat) }
    const lines: Array<string> = []
    for (const image of images) {
      for (const line of await this.readText(sceneId, record, image.bytes)) {
        if (!lines.includes(line)) lines.push(line)
      }
    }
    return { text: describeScreen(lines), engine: "local" }
  }

  /** The JPEGs of an rtstream's open scenes' shots. */
  private shotImagesOf(rtstreamId: string): Map<string, Uint8Array> {
    let images = this.shotImages.get(rtstreamId)
    if (images === undefined) {
      images = new Map()
      this.shotImages.set(rtstreamId, images)
      if (this.shotImages.size > 1_000) this.shotImages.delete(this.shotImages.keys().next().value as string)
    }
    return images
  }

  /** A shot's JPEG: kept since its segment was taken here, else decoded again from the media store. */
  private async shotImage(
    rtstreamId: string,
    record: MediaSegment,
    shot: FrameRef,
  ): Promise<Uint8Array | undefined> {
    const images = this.shotImagesOf(rtstreamId)
    const key = frameKey(shot)
    const known = images.get(key)
    if (known !== undefined) return known
    const frames = await this.segmentFrames(rtstreamId, record, shot.segment, shot.fps, true)
    for (const [position, frame] of frames.entries()) {
      if (frame.jpeg !== undefined) images.set(frameKey({ ...shot, position }), frame.jpeg)
    }
    return images.get(key)
  }

  /**
   * The chat model an index's results are asked of: the worker's, asking for the model the index
   * named (`model_name` resolved when it was created) when it named one.
   */
  private chatFor(index: SceneIndexState): ChatModel | undefined {
    const chat = this.options.chat
    const model = index.chatModel
    if (chat === undefined || model === null || model === chat.model) return chat
    return { model, complete: (request) => chat.complete({ ...request, model }) }
  }

  /**
   * A chat model's answer for `key` (a result, or a result's alert), tried as transcription is;
   * the error that outlasted the retries, logged, when it failed.
   */
  private async askChat<T extends string | EventVerdict>(
    key: string,
    ask: () => Promise<T>,
  ): Promise<T | Error> {
    const known = this.chatAnswers.get(key)
    if (known !== undefined) return known as T
    const outcome = await this.withRetries(ask)
    if (outcome instanceof Error) {
      this.stats.chatFailures++
      this.log(`ai: ${key}: the chat model failed (${outcome.message}); the local result is stored instead`)
      return outcome
    }
    this.stats.chatCalls++
    this.chatAnswers.set(key, outcome)
    if (this.chatAnswers.size > 2_000) this.chatAnswers.delete(this.chatAnswers.keys().next().value as string)
    return outcome
  }

  /**
   * The index's enabled alerts that a result fires: each decided by the chat model (a yes/no with
   * a confidence) or, without one or when it fails, by the deterministic matcher.
   */
  private async evaluateAlerts(
    state: RtstreamAi,
    index: SceneIndexState,
    sceneId: string,
    text: string,
  ): Promise<Array<FiredAlert>> {
    const chat = this.chatFor(index)
    if (chat === undefined) return firedAlerts(state, index.indexId, text)
    const decided = await Promise.all(
      alertsOf(state, index.indexId).map(async (alert): Promise<Array<FiredAlert>> => {
        const verdict = await this.askChat(`${sceneId}/alert/${alert.alertId}`, () =>
          decideEvent(chat, alert, text, index.kind),
        )
        if (verdict instanceof Error) {
          const match = matchEvent(text, alert.label, alert.prompt)
          return match.fires
            ? [
                firedAlert(
                  alert,
                  match.confidence,
                  `the chat model failed; matched by terms: ${match.explanation}`,
                ),
              ]
            : []
        }
        if (!verdict.triggered) return []
        return [
          firedAlert(alert, verdict.confidence, verdict.explanation || `${chat.model} says it happened`),
        ]
      }),
    )
    return decided.flat()
  }

  /** A display segment's frames (with JPEGs when asked); bytes that are gone or do not decode give none. */
  private async segmentFrames(
    rtstreamId: string,
    record: MediaSegment,
    segment: number,
    fps: number,
    jpeg: boolean,
  ): Promise<Array<GreyFrame>> {
    const bytes = await this.options.media.read(record.session_id, record.channel_id, segment)
    if (bytes === undefined) return []
    if (!jpeg) {
      const known = this.lastFrames.get(rtstreamId)
      if (known !== undefined && known.segment === segment && known.fps === fps) return known.frames
      const frames = await this.streamFrames(rtstreamId, segment, fps, bytes)
      if (frames !== undefined) {
        this.lastFrames.delete(rtstreamId)
        this.lastFrames.set(rtstreamId, { segment, fps, frames })
        if (this.lastFrames.size > MAX_DISPLAY_DECODERS) {
          this.lastFrames.delete(this.lastFrames.keys().next().value as string)
        }
        return frames
      }
    }
    return decodeFrames(this.options.decoders.ffmpeg, bytes, fps, { jpeg }).catch((error: unknown) => {
      if (!(error instanceof FrameDecodeError)) throw error
      this.log(`ai: ${rtstreamId} segment ${segment} does not decode (${error.message}); no frames`)
      return []
    })
  }

  /** A segment's grey frames from its rtstream's long-lived decoder; undefined when it cannot give them. */
  private async streamFrames(
    rtstreamId: string,
    segment: number,
    fps: number,
    bytes: Uint8Array,
  ): Promise<Array<GreyFrame> | undefined> {
    let decoder = this.displayDecoders.get(rtstreamId)
    if (decoder !== undefined && decoder.fps !== fps) {
      void decoder.close()
      decoder = undefined
    }
    if (decoder === undefined) {
      decoder = new DisplayDecoder(this.options.decoders.ffmpeg, fps)
      this.displayDecoders.set(rtstreamId, decoder)
      if (this.displayDecoders.size > MAX_DISPLAY_DECODERS) {
        const [oldest, stale] = this.displayDecoders.entries().next().value as [string, DisplayDecoder]
        void stale.close()
        this.displayDecoders.delete(oldest)
      }
    } else {
      // Most recently used last, so the oldest is closed first.
      this.displayDecoders.delete(rtstreamId)
      this.displayDecoders.set(rtstreamId, decoder)
    }
    return decoder.decode(segment, bytes)
  }

  /** The words, or the error that outlasted the retries. */
  private async transcribe(
    engine: TranscriptionEngine | undefined,
    name: string,
    pcm: Int16Array,
  ): Promise<string | Error> {
    if (engine === undefined) return new EngineError(`engine ${name} is not configured on this worker`, false)
    return this.withRetries(() => engine.transcribe(pcm))
  }

  /**
   * A provider call tried `engineAttempts` times, pausing `engineRetryDelayMs` (doubling) between
   * tries; an `EngineError` that is not retryable (a refused key or request) is not tried again.
   */
  private async withRetries<T>(call: () => Promise<T>): Promise<T | Error> {
    const attempts = this.options.engineAttempts ?? 3
    let pause = this.options.engineRetryDelayMs ?? 1_000
    for (let attempt = 1; ; attempt++) {
      try {
        return await call()
      } catch (error) {
        const failure = error instanceof Error ? error : new Error(String(error))
        const retryable = !(failure instanceof EngineError) || failure.retryable
        if (!retryable || attempt >= attempts) return failure
        await new Promise((resolve) => setTimeout(resolve, pause))
        pause *= 2
      }
    }
  }

  /** A segment's decoded audio (cached per rtstream); undefined bytes (deleted) decode as nothing. */
  private async segmentPcm(rtstreamId: string, record: MediaSegment, index: number): Promise<Int16Array> {
    let cache = this.pcm.get(rtstreamId)
    const cached = cache?.get(index)
    if (cached !== undefined) return cached
    const bytes = await this.options.media.read(record.session_id, record.channel_id, index)
    const pcm =
      bytes === undefined
        ? new Int16Array(0)
        : await decodeToPcm(this.options.decoders, bytes).catch((error: unknown) => {
            // Retrying cannot fix stored bytes: the segment counts as silence.
            if (!(error instanceof AudioDecodeError)) throw error
            this.log(
              `ai: ${rtstreamId} segment ${index} does not decode (${error.message}); taken as silence`,
            )
            return new Int16Array(0)
          })
    if (cache === undefined) {
      cache = new Map()
      this.pcm.set(rtstreamId, cache)
      if (this.pcm.size > 1_000) this.pcm.delete(this.pcm.keys().next().value as string)
    }
    cache.set(index, pcm)
    for (const key of cache.keys()) if (key < index - CACHED_SEGMENTS) cache.delete(key)
    return pcm
  }

  /**
   * The open utterance's audio: from its first sample to the start of `record` (segments are
   * contiguous, so it is the tail of segments `from_index` … `index - 1`). Null when a segment's
   * bytes are gone.
   */
  private async carried(
    rtstreamId: string,
    record: MediaSegment,
    open: OpenUtterance,
  ): Promise<Int16Array | null> {
    const parts: Array<Int16Array> = []
    for (let index = open.from_index; index < record.index; index++) {
      const pcm = await this.segmentPcm(rtstreamId, record, index)
      if (pcm.length === 0) return null
      parts.push(pcm)
    }
    const all = concatPcm(parts)
    const wanted = msToSamples(record.start_ms - open.start_ms)
    return all.subarray(Math.max(0, all.length - wanted))
  }
}
