/**
 * Search over what was said and seen: one rtstream (`rtstream.search`) or a collection's rtstreams
 * (`coll.search(query, "rtstream")`), in the wire format RTSTREAM-REFERENCE.md records.
 */
import {
  COLLECTION_RTSTREAM_SEARCH_ROUTE,
  CollectionId,
  RTSTREAM_SEARCH_ROUTE,
  RtstreamId,
  SearchRequest,
  SearchResults,
  Success,
} from "@capture/protocol"
import { HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import { CommonFailures } from "./Failures.js"

export class SearchGroup extends HttpApiGroup.make("search")
  .add(
    HttpApiEndpoint.post("searchCollection", COLLECTION_RTSTREAM_SEARCH_ROUTE, {
      params: { collection_id: CollectionId },
      payload: SearchRequest,
      success: Success(SearchResults),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.post("searchRtstream", RTSTREAM_SEARCH_ROUTE, {
      params: { rtstream_id: RtstreamId },
      payload: SearchRequest,
      success: Success(SearchResults),
      error: CommonFailures,
    }),
  ) {}
