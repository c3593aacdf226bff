/**
 * The rtstream routes as an HttpApi group: each channel of a started session is an rtstream
 * (`rts-…`), read, listed, stopped and started, played over a recorded time range
 * (`generateStream`) and exported, in the wire format VideoDB's SDK speaks (RTSTREAM-REFERENCE.md).
 * The AI routes under `/rtstream/{id}/…` (transcription, indexes) are groups of their own.
 */
import {
  ListRtstreamsQuery,
  Processing,
  RTSTREAM_EXPORT_ROUTE,
  RTSTREAM_ROUTE,
  RTSTREAM_STATUS_ROUTE,
  RTSTREAM_STREAM_ROUTE,
  RTSTREAMS_ROUTE,
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
    HttpApiEndpoint.get("listRtstreams", RTSTREAMS_ROUTE, {
      query: ListRtstreamsQuery,
      success: Success(RtstreamList),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.get("getRtstream", RTSTREAM_ROUTE, {
      params: RtstreamParams,
      success: Success(RtstreamResource),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.patch("setRtstreamStatus", RTSTREAM_STATUS_ROUTE, {
      params: RtstreamParams,
      payload: RtstreamStatusRequest,
      success: Success(RtstreamResource),
      error: [...CommonFailures, Conflict],
    }),
  )
  .add(
    HttpApiEndpoint.get("generateStream", RTSTREAM_STREAM_ROUTE, {
      params: RtstreamParams,
      query: StreamRangeQuery,
      success: Success(StreamRangeView),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.post("exportRtstream", RTSTREAM_EXPORT_ROUTE, {
      params: RtstreamParams,
      payload: RtstreamExportRequest,
      success: [Success(RtstreamExportView), ExportProcessing],
      error: [...CommonFailures, Conflict],
    }),
  )
  .add(
    HttpApiEndpoint.get("rtstreamExport", RTSTREAM_EXPORT_ROUTE, {
      params: RtstreamParams,
      query: RtstreamExportQuery,
      success: [Success(RtstreamExportView), ExportProcessing],
      error: [...CommonFailures, Conflict],
    }),
  ) {}
