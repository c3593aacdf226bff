/**
 * Search of exported videos as VideoDB's SDKs call it on `coll.getVideo(id)`: the spoken-word
 * index (`indexSpokenWords`), its transcript (`getTranscript`, `getTranscriptText`,
 * `generateTranscript`), search (`video.search`) and playable ranges (`shot.generateStream`),
 * in the wire format the SDK's `Video`, `SearchResult` and `Shot` read.
 */
import {
  COLLECTION_VIDEO_SEARCH_ROUTE,
  COMPILE_ROUTE,
  CollectionId,
  CompileRequest,
  CompileView,
  Processing,
  Success,
  VIDEO_INDEX_ROUTE,
  VIDEO_SEARCH_ROUTE,
  VIDEO_STREAM_ROUTE,
  VIDEO_TRANSCRIPTION_ROUTE,
  VideoId,
  VideoIndexRequest,
  VideoIndexView,
  VideoSearchRequest,
  VideoSearchResults,
  VideoStreamRequest,
  VideoStreamView,
  VideoTranscriptionRequest,
  VideoTranscriptQuery,
  VideoTranscriptView,
} from "@capture/protocol"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema } from "effect/http-api"
import { CommonFailures, Conflict } from "./Failures.js"

const VideoParams = { video_id: VideoId }

/** While the recording's audio is transcribed: VideoDB's SDK polls `output_url` until it is done. */
const IndexProcessing = Processing.pipe(HttpApiSchema.status(202))
const TranscriptAnswer = [Success(VideoTranscriptView), IndexProcessing]

export class VideosGroup extends HttpApiGroup.make("videos")
  .add(
    HttpApiEndpoint.post("indexVideo", VIDEO_INDEX_ROUTE, {
      params: VideoParams,
      payload: VideoIndexRequest,
      success: [Success(VideoIndexView), IndexProcessing],
      error: [...CommonFailures, Conflict],
    }),
  )
  .add(
    HttpApiEndpoint.get("videoIndex", VIDEO_INDEX_ROUTE, {
      params: VideoParams,
      success: [Success(VideoIndexView), IndexProcessing],
      error: [...CommonFailures, Conflict],
    }),
  )
  .add(
    HttpApiEndpoint.get("videoTranscript", VIDEO_TRANSCRIPTION_ROUTE, {
      params: VideoParams,
      query: VideoTranscriptQuery,
      success: TranscriptAnswer,
      error: [...CommonFailures, Conflict],
    }),
  )
  .add(
    HttpApiEndpoint.post("transcribeVideo", VIDEO_TRANSCRIPTION_ROUTE, {
      params: VideoParams,
      payload: VideoTranscriptionRequest,
      success: TranscriptAnswer,
      error: [...CommonFailures, Conflict],
    }),
  )
  .add(
    HttpApiEndpoint.post("searchVideo", VIDEO_SEARCH_ROUTE, {
      params: VideoParams,
      payload: VideoSearchRequest,
      success: Success(VideoSearchResults),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.post("streamVideo", VIDEO_STREAM_ROUTE, {
      params: VideoParams,
      payload: VideoStreamRequest,
      success: Success(VideoStreamView),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.post("compileShots", COMPILE_ROUTE, {
      payload: CompileRequest,
      success: Success(CompileView),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.post("searchCollectionVideos", COLLECTION_VIDEO_SEARCH_ROUTE, {
      params: { collection_id: CollectionId },
      payload: VideoSearchRequest,
      success: Success(VideoSearchResults),
      error: CommonFailures,
    }),
  ) {}
