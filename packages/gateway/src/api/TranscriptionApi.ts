/**
 * The rtstream transcription routes, as VideoDB's SDK calls them: `POST
 * /rtstream/{id}/transcription` (`{action: "start" | "stop", engine?, ws_connection_id?, mode?}`)
 * and `GET /rtstream/{id}/transcription` (a page of the transcript). API keys reach their
 * account's rtstreams; a client token only its own end user's.
 */
import {
  RtstreamId,
  Success,
  TranscriptionRequest,
  TranscriptionView,
  TranscriptPage,
  TranscriptQuery,
} from "@capture/protocol"
import { HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import { CommonFailures } from "./Failures.js"

// Path ids become subjects and KV keys: decoded by their pattern (a 400 naming the field).
const RtstreamParams = { rtstream_id: RtstreamId }

export class TranscriptionGroup extends HttpApiGroup.make("transcription")
  .add(
    HttpApiEndpoint.post("controlTranscription", "/rtstream/:rtstream_id/transcription", {
      params: RtstreamParams,
      payload: TranscriptionRequest,
      success: Success(TranscriptionView),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.get("getTranscript", "/rtstream/:rtstream_id/transcription", {
      params: RtstreamParams,
      query: TranscriptQuery,
      success: Success(TranscriptPage),
      error: CommonFailures,
    }),
  ) {}
