/**
 * The rtstream routes as an HttpApi group: each channel of a started session is an rtstream
 * (`rts-…`), read, listed, stopped and started, played over a recorded time range
 * (`generateStream`) and exported, in the wire format VideoDB's SDK speaks (RTSTREAM-REFERENCE.md).
 * The AI routes under `/rtstream/{id}/…` (transcription, indexes) are groups of their own.
 */
import {
  ListRtstreamsQuery,
  Processing,
  RtstreamExportQuery,
  RtstreamExportRequest,
  RtstreamExportView,
  RtstreamId,
  RtstreamList,
  RtstreamResource,
  RtstreamStatusRequest,
  StreamRangeQuery,
  StreamRangeView,
  Success,
} from "@capture/protocol"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema } from "effect/http-api"
import { CommonFailures, Conflict } from "./Failures.js"

// Decoded by its pattern, like session ids: `..`, `*`, `>` or a NUL is a 400 naming the field.
const RtstreamParams = { rtstream_id: RtstreamId }

/** While the export is being made: VideoDB's SDK polls `output_url` until it is done. */
const ExportProcessing = Processing.pipe(HttpApiSchema.status(202))

export class RtstreamsGroup extends HttpApiGroup.make("rtstreams")
  .add(
    HttpApiEndpoint.get("listRtstreams", "/rtstream", {
      query: ListRtstreamsQuery,
      success: Success(RtstreamList),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.get("getRtstream", "/rtstream/:rtstream_id", {
      params: RtstreamParams,
      success: Success(RtstreamResource),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.patch("setRtstreamStatus", "/rtstream/:rtstream_id/status", {
      params: RtstreamParams,
      payload: RtstreamStatusRequest,
      success: Success(RtstreamResource),
      error: [...CommonFailures, Conflict],
    }),
  )
  .add(
    HttpApiEndpoint.get("generateStream", "/rtstream/:rtstream_id/stream", {
      params: RtstreamParams,
      query: StreamRangeQuery,
      success: Success(StreamRangeView),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.post("exportRtstream", "/rtstream/:rtstream_id/export", {
      params: RtstreamParams,
      payload: RtstreamExportRequest,
      success: [Success(RtstreamExportView), ExportProcessing],
      error: [...CommonFailures, Conflict],
    }),
  )
  .add(
    HttpApiEndpoint.get("rtstreamExport", "/rtstream/:rtstream_id/export", {
      params: RtstreamParams,
      query: RtstreamExportQuery,
      success: [Success(RtstreamExportView), ExportProcessing],
      error: [...CommonFailures, Conflict],
    }),
  ) {}
