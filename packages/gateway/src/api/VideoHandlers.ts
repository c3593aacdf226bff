/**
 * Handlers of the exported-video routes. A video is reached as its session is (its account, and
 * a client token's own end user only; anything else is 404 `not_found`). Its spoken words are the
 * final transcript of the audio channels mixed into it, found in this process's search projection
 * (`SearchIndex`) like the rtstream searches; results are moved onto the video's timeline, which
 * starts at the export's `start_ms` and closes over the paused spans it left out. Audio never
 * transcribed live is transcribed from the recording when its spoken words are asked for (a job
 * for the AI workers); a collection's search places each shot in the exported videos holding it;
 * `POST /compile` plays a search's shots as one stream.
 */
import {
  type RtstreamAi,
  readTranscript,
  type SearchHit,
  type SearchKind,
  type TranscriptionTarget,
  transcribeRecording,
  transcriptTimestamps,
} from "@capture/ai"
import {
  type CaptureSession,
  type CompiledPart,
  captureError,
  compiledUrls,
  type ExportMetadata,
  exportRangeUrls,
  exportUrls,
  exportWallEndMs,
  MAX_TIMELINE_RANGES,
  pathOf,
  type RtstreamView,
  type SessionId,
  successOf,
  type TranscriptPage,
  VIDEO_INDEX_ROUTE,
  VIDEO_TRANSCRIPTION_ROUTE,
  type VideoId,
  type VideoSearchDoc,
  type VideoTimeline,
  type VideoTranscriptQuery,
  videoSecondsAt,
} from "@capture/protocol"
import { type SessionContext, toCaptureSession } from "@capture/session-actor"
import { Effect, Result } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { mayReach } from "../access/RtstreamAccess.js"
import type { Principal } from "../accounts/AccountStore.js"
import { GatewayServices, type GatewayServicesShape } from "../GatewayContext.js"
import { CaptureApi, CurrentPrincipal } from "./CaptureApi.js"
import type { Failure } from "./Failures.js"
import { aiCommand, call, refuse } from "./Handlers.js"
import { endUserOf } from "./SearchHandlers.js"

/** An export the principal may reach, with its session as clients see it. */
interface ReachableVideo {
  readonly metadata: ExportMetadata
  readonly session: CaptureSession
  /** Its session's owners, as the actor holds them. */
  readonly context: SessionContext
}

const videoNotFound = (videoId: string) =>
  refuse(captureError("not_found", `no video ${videoId}`, { field: "video_id" }))

const findVideo = (
  services: GatewayServicesShape,
  principal: Principal,
  videoId: VideoId,
): Effect.Effect<ReachableVideo, Failure> =>
  Effect.gen(function* () {
    const metadata = yield* call("reading the export", () => services.exports.get(videoId))
    if (metadata === undefined) return yield* videoNotFound(videoId)
    const loaded = yield* call("loading the session", () => services.runtime.host.load(metadata.session_id))
    const session = toCaptureSession(loaded.state)
    if (session === null || !mayReach(principal, loaded.state.context)) return yield* videoNotFound(videoId)
    return { metadata, session, context: loaded.state.context }
  })

/** The rtstreams of the export's channels: the audio mixed into it (spoken words), or its display (scenes). */
const rtstreamsOf = ({ metadata, session }: ReachableVideo, kind: "spoken" | "scene"): Array<RtstreamView> =>
  session.rtstreams.filter((r) =>
    kind === "spoken"
      ? (metadata.audio_channel_ids as ReadonlyArray<string>).includes(r.name)
      : r.name === metadata.video_channel_id,
  )

/** The ranges of `timeline` within the video, in seconds; empty ones left out. */
const clampTimeline = (metadata: ExportMetadata, timeline: VideoTimeline): VideoTimeline => {
  const length = metadata.duration_ms / 1000
  return timeline
    .map(([start, end]) => [Math.min(start, length), Math.min(end, length)] as const)
    .filter(([start, end]) => end > start)
}

/**
 * Wall-clock epoch ms as seconds of the video (less the export's start and the paused time cut out
 * before it); undefined when the range lies outside the video, or entirely in paused time.
 */
const videoRangeOf = (
  metadata: ExportMetadata,
  startMs: number,
  endMs: number,
): readonly [number, number] | undefined => {
  if (endMs <= metadata.start_ms || startMs >= exportWallEndMs(metadata)) return undefined
  const start = videoSecondsAt(metadata, startMs)
  const end = videoSecondsAt(metadata, endMs)
  return end > start ? [start, end] : undefined
}

/** An audio rtstream of the video as the target of its transcription. */
const targetOf = (
  { metadata, session, context }: ReachableVideo,
  rtstream: RtstreamView,
): TranscriptionTarget => ({
  rtstream_id: rtstream.rtstream_id,
  rtstream_name: rtstream.name,
  session_id: metadata.session_id,
  channel_id: rtstream.name,
  account_id: context.account_id,
  end_user_id: context.end_user_id,
  collection_id: session.collection_id,
})

/** A video without an audio channel has no spoken words to index or transcribe. */
const noAudio = (metadata: ExportMetadata) =>
  refuse(
    captureError("no_transcript", `video ${metadata.video_id} has no audio channel to have spoken words`, {
      field: "video_id",
    }),
  )

/** The video's audio channels, refused when it has none. */
const audioOf = (video: ReachableVideo) => {
  const audio = rtstreamsOf(video, "spoken")
  return audio.length === 0 ? noAudio(video.metadata) : Effect.succeed(audio)
}

/** Audio never transcribed while it recorded is transcribed now, from its stored segments. */
const transcribeFromRecording = (
  services: GatewayServicesShape,
  video: ReachableVideo,
  audio: ReadonlyArray<RtstreamView>,
) =>
  Effect.gen(function* () {
    for (const rtstream of audio) {
      const target = targetOf(video, rtstream)
      const started = yield* aiCommand(
        "transcribeRecording",
        "starting the recording's transcription",
        target,
        (span) => transcribeRecording(services.ai, target, services.transcription, span),
      )
      if (Result.isFailure(started)) return yield* refuse(started.failure)
    }
  })

/** VideoDB's answer to a job still running: the SDK polls `output_url` until it is something else. */
const processingAt = (outputUrl: string) => ({
  success: true as const,
  status: "processing" as const,
  data: { output_url: outputUrl },
})

/** A channel's final transcript within the video's time, and how its transcription stands. */
interface ChannelTranscript {
  readonly rtstream: RtstreamView
  readonly state: RtstreamAi
  readonly page: TranscriptPage
}

const fromRecording = (state: RtstreamAi) => state.transcription.source === "recording"

/**
 * The audio channels' transcripts within the video's time (`undefined` while one is still being
 * transcribed from the recording); 409 `no_transcript` when none was transcribed at all.
 */
const channelTranscripts = (
  services: GatewayServicesShape,
  { metadata }: ReachableVideo,
  audio: ReadonlyArray<RtstreamView>,
  pageSize: number,
): Effect.Effect<ReadonlyArray<ChannelTranscript> | undefined, Failure> =>
  Effect.gen(function* () {
    if (audio.length === 0) return yield* noAudio(metadata)
    const states = yield* call("reading the transcription", () =>
      Promise.all(audio.map((r) => services.ai.load(r.rtstream_id))),
    )
    if (states.some((state) => state.transcription.status === "active" && fromRecording(state)))
      return undefined
    const channels = yield* call("reading the transcript", () =>
      Promise.all(
        audio.map(async (rtstream, i) => ({
          rtstream,
          state: states[i] as RtstreamAi,
          page: await readTranscript(services.ai, rtstream.rtstream_id, {
            start: metadata.start_ms,
            end: exportWallEndMs(metadata),
            page_size: pageSize,
          }),
        })),
      ),
    )
    const transcribed = channels.filter(({ page }) => page.status !== "inactive")
    if (transcribed.length === 0) {
      return yield* refuse(
        captureError(
          "no_transcript",
          `the audio of video ${metadata.video_id} (${audio.map((r) => r.name).join(", ")}) is not transcribed: ` +
            "index its spoken words (POST /video/{id}/index) or ask for its transcript first",
          { field: "video_id" },
        ),
      )
    }
    return transcribed
  })

/** Where the channels' transcription stands, as the index and transcript answers say it. */
const provenanceOf = (channels: ReadonlyArray<ChannelTranscript>) => ({
  channel_ids: channels.map(({ rtstream }) => rtstream.name),
  transcription_status: channels.some(({ page }) => page.status === "active")
    ? ("active" as const)
    : ("stopped" as const),
  transcribed_from_recording: channels
    .filter(({ state }) => fromRecording(state))
    .map(({ rtstream }) => rtstream.name),
})

/** The video's spoken-word index as its audio channels' transcripts stand. */
const spokenWordIndex = (
  services: GatewayServicesShape,
  video: ReachableVideo,
  audio: ReadonlyArray<RtstreamView>,
) =>
  Effect.gen(function* () {
    const { metadata } = video
    const channels = yield* channelTranscripts(services, video, audio, 1)
    if (channels === undefined) {
      return processingAt(
        `${services.config.publicUrl}${pathOf(VIDEO_INDEX_ROUTE, { video_id: metadata.video_id })}`,
      )
    }
    const segments = channels.reduce((n, { page }) => n + page.total, 0)
    return successOf({
      success: true,
      message: `spoken words of ${channels.map(({ rtstream }) => rtstream.name).join(", ")}: ${segments} segments`,
      video_id: metadata.video_id,
      session_id: metadata.session_id,
      segments,
      ...provenanceOf(channels),
    })
  })

/**
 * The video's transcript as VideoDB answers it (`word_timestamps`, `text`), in seconds of the
 * video; `processing` at the same query while its audio is transcribed from the recording.
 */
const videoTranscript = (
  services: GatewayServicesShape,
  video: ReachableVideo,
  audio: ReadonlyArray<RtstreamView>,
  query: VideoTranscriptQuery,
) =>
  Effect.gen(function* () {
    const { metadata } = video
    const channels = yield* channelTranscripts(services, video, audio, Number.MAX_SAFE_INTEGER)
    if (channels === undefined) {
      const params = new URLSearchParams(
        Object.entries(query).flatMap(([key, value]) =>
          value === undefined ? [] : [[key, String(value)] as [string, string]],
        ),
      )
      const path = pathOf(VIDEO_TRANSCRIPTION_ROUTE, { video_id: metadata.video_id })
      return processingAt(`${services.config.publicUrl}${path}${params.size > 0 ? `?${params}` : ""}`)
    }
    const utterances = channels.flatMap(({ page }) =>
      page.segments.flatMap((segment) => {
        const range = videoRangeOf(metadata, segment.start, segment.end)
        return range === undefined ? [] : [{ start: range[0], end: range[1], text: segment.text }]
      }),
    )
    const segmenter = query.segmenter ?? "word"
    const length = query.length ?? 1
    const { text, timestamps } = transcriptTimestamps(utterances, segmenter, length, query.start, query.end)
    return successOf({
      video_id: metadata.video_id,
      text,
      word_timestamps: timestamps,
      segmenter,
      length,
      ...provenanceOf(channels),
    })
  })

/** The SDK's default `result_threshold`, when a call gives none. */
const DEFAULT_RESULTS = 50

/**
 * A hit as a shot of the video: seconds of the video (its wall-clock time less the export's start
 * and the paused time cut out before it). Undefined when it lies outside the video, or was said
 * entirely while paused.
 */
const docOf = (publicUrl: string, metadata: ExportMetadata, hit: SearchHit): VideoSearchDoc | undefined => {
  const range = videoRangeOf(metadata, hit.start * 1000, hit.end * 1000)
  if (range === undefined) return undefined
  const [start, end] = range
  return {
    start,
    end,
    text: hit.text,
    score: hit.score,
    scene_index_id: hit.index_id,
    scene_index_name: hit.index_name,
    metadata: { rtstream_id: hit.rtstream_id, channel_id: hit.rtstream_name, kind: hit.kind },
    ...exportRangeUrls(publicUrl, metadata.video_id, [[start, end]]),
  }
}

/** One video's result: its shots in `docs`, best first. */
const resultOf = ({ metadata, session }: ReachableVideo, docs: ReadonlyArray<VideoSearchDoc>) => ({
  video_id: metadata.video_id,
  collection_id: session.collection_id,
  title: `${metadata.session_id} ${metadata.video_channel_id ?? "audio"}`,
  length: metadata.duration_ms / 1000,
  docs,
})

/** The exported videos of a session the principal may reach (none when it may not). */
const exportedVideos = (
  services: GatewayServicesShape,
  principal: Principal,
  sessionId: SessionId,
): Effect.Effect<ReadonlyArray<ReachableVideo>, Failure> =>
  call("reading the session's exports", async () => {
    const loaded = await services.runtime.host.load(sessionId)
    const session = toCaptureSession(loaded.state)
    if (session === null || !mayReach(principal, loaded.state.context)) return []
    const videos: Array<ReachableVideo> = []
    for (const done of session.exports) {
      if (done.export_status !== "exported" || done.video_id === null) continue
      const metadata = await services.exports.get(done.video_id)
      if (metadata !== undefined) videos.push({ metadata, session, context: loaded.state.context })
    }
    return videos
  })

export const VideosLive = HttpApiBuilder.group(CaptureApi, "videos", (handlers) =>
  Effect.gen(function* () {
    const services = yield* GatewayServices
    const publicUrl = services.config.publicUrl
    return (
      handlers
        .handle("indexVideo", ({ params }) =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            const video = yield* findVideo(services, principal, params.video_id)
            const audio = yield* audioOf(video)
            yield* transcribeFromRecording(services, video, audio)
            return yield* spokenWordIndex(services, video, audio)
          }),
        )
        .handle("videoIndex", ({ params }) =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            const video = yield* findVideo(services, principal, params.video_id)
            return yield* spokenWordIndex(services, video, rtstreamsOf(video, "spoken"))
          }),
        )
        // VideoDB's `getTranscript` generates the transcript when there is none: so does a GET here.
        .handle("videoTranscript", ({ params, query }) =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            const video = yield* findVideo(services, principal, params.video_id)
            const audio = yield* audioOf(video)
            yield* transcribeFromRecording(services, video, audio)
            return yield* videoTranscript(services, video, audio, query)
          }),
        )
        .handle("transcribeVideo", ({ params }) =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            const video = yield* findVideo(services, principal, params.video_id)
            const audio = yield* audioOf(video)
            yield* transcribeFromRecording(services, video, audio)
            return yield* videoTranscript(services, video, audio, {})
          }),
        )
        .handle("searchVideo", ({ params, payload }) =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            const video = yield* findVideo(services, principal, params.video_id)
            const { metadata } = video
            const scenes = payload.index_type === "scene"
            const kind: SearchKind = scenes ? "visual" : "transcript"
            const hits = yield* call("searching", async () => {
              await services.search.catchUp()
              return services.search.index.search({
                query: payload.query,
                account_id: principal.account_id,
                session_id: metadata.session_id,
                rtstream_ids: rtstreamsOf(video, scenes ? "scene" : "spoken").map((r) => r.rtstream_id),
                kind,
                index_id: payload.scene_index_id ?? undefined,
                from_ms: metadata.start_ms,
                to_ms: exportWallEndMs(metadata),
                limit: payload.result_threshold ?? undefined,
                score_threshold: payload.score_threshold ?? undefined,
              })
            })
            const docs = hits.flatMap((hit) => docOf(publicUrl, metadata, hit) ?? [])
            return successOf({ results: docs.length === 0 ? [] : [resultOf(video, docs)] })
          }),
        )
        .handle("searchCollectionVideos", ({ params, payload }) =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            const scenes = payload.index_type === "scene"
            const limit = payload.result_threshold ?? DEFAULT_RESULTS
            const hits = yield* call("searching", async () => {
              await services.search.catchUp()
              return services.search.index.search({
                query: payload.query,
                account_id: principal.account_id,
                collection_id: params.collection_id,
                end_user_id: endUserOf(principal),
                kind: scenes ? "visual" : "transcript",
                index_id: payload.scene_index_id ?? undefined,
                // Shots of sessions never exported are left out below: ask for more.
                limit: Math.min(1000, limit * 4),
                score_threshold: payload.score_threshold ?? undefined,
              })
            })
            const videosOf = new Map<string, ReadonlyArray<ReachableVideo>>()
            for (const sessionId of new Set(hits.map((hit) => hit.session_id))) {
              videosOf.set(sessionId, yield* exportedVideos(services, principal, sessionId as SessionId))
            }
            // Best shot first; each video's result where its best shot ranks.
            const results = new Map<string, { video: ReachableVideo; docs: Array<VideoSearchDoc> }>()
            let kept = 0
            for (const hit of hits) {
              if (kept >= limit) break
              for (const video of videosOf.get(hit.session_id) ?? []) {
                const channels = rtstreamsOf(video, scenes ? "scene" : "spoken")
                if (!channels.some((r) => r.rtstream_id === hit.rtstream_id)) continue
                const doc = docOf(publicUrl, video.metadata, hit)
                if (doc === undefined) continue
                const id = video.metadata.video_id
                const result = results.get(id) ?? { video, docs: [] }
                result.docs.push(doc)
                results.set(id, result)
                kept++
              }
            }
            return successOf({
              results: [...results.values()].map(({ video, docs }) => resultOf(video, docs)),
            })
          }),
        )
        .handle("streamVideo", ({ params, payload }) =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            const { metadata } = yield* findVideo(services, principal, params.video_id)
            const asked = payload.timeline ?? undefined
            if (asked === undefined) {
              const whole = exportUrls(publicUrl, metadata.video_id)
              return successOf({
                video_id: metadata.video_id,
                stream_url: whole.stream_url,
                player_url: whole.player_url,
                timeline: [[0, metadata.duration_ms / 1000] as const],
              })
            }
            const timeline = clampTimeline(metadata, asked)
            if (timeline.length === 0) {
              return yield* refuse(
                captureError(
                  "invalid_time_range",
                  `no range of timeline lies within the video (0 to ${metadata.duration_ms / 1000} s), each [start, end] with end after start`,
                  { field: "timeline" },
                ),
              )
            }
            return successOf({
              video_id: metadata.video_id,
              ...exportRangeUrls(publicUrl, metadata.video_id, timeline),
              timeline,
            })
          }),
        )
        .handle("compileShots", ({ payload }) =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            const videos = new Map<string, ReachableVideo>()
            for (const { video_id } of payload) {
              if (!videos.has(video_id)) videos.set(video_id, yield* findVideo(services, principal, video_id))
            }
            // The SDK sends a shot an entry: a video's shots in a row play as one part.
            const parts: Array<CompiledPart & { readonly video_id: VideoId }> = []
            for (const entry of payload) {
              const metadata = (videos.get(entry.video_id) as ReachableVideo).metadata
              const timeline = clampTimeline(metadata, entry.shots)
              if (timeline.length === 0) continue
              const last = parts.at(-1)
              if (last?.video_id === entry.video_id)
                parts[parts.length - 1] = { ...last, timeline: [...last.timeline, ...timeline] }
              else parts.push({ video_id: entry.video_id, timeline })
            }
            const ranges = parts.reduce((n, part) => n + part.timeline.length, 0)
            if (parts.length === 0 || ranges > MAX_TIMELINE_RANGES) {
              return yield* refuse(
                captureError(
                  "invalid_time_range",
                  parts.length === 0
                    ? "no shot lies within its video, each [start, end] in seconds with end after start"
                    : `at most ${MAX_TIMELINE_RANGES} shots compile into one stream`,
                  { field: "shots" },
                ),
              )
            }
            return successOf({ ...compiledUrls(publicUrl, parts), parts })
          }),
        )
    )
  }),
)
