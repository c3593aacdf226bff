/**
 * The rtstream index routes, as VideoDB's SDK calls them (RTSTREAM-REFERENCE.md): create and list
 * (`/rtstream/{id}/index/scene`), get (`/rtstream/{id}/index/{idx}`), a page of scenes and a new
 * prompt (`/rtstream/{id}/index/scene/{idx}`), start and stop (`…/status`). API keys reach their
 * account's rtstreams; a client token only its own end user's.
 */
import {
  RtstreamId,
  SCENE_INDEX_ROUTE,
  SCENE_INDEX_SCENES_ROUTE,
  SCENE_INDEX_STATUS_ROUTE,
  SCENE_INDEXES_ROUTE,
  SceneIndexId,
  SceneIndexList,
  SceneIndexRequest,
  SceneIndexStatusRequest,
  SceneIndexUpdated,
  SceneIndexUpdateRequest,
  SceneIndexView,
  ScenePage,
  ScenesQuery,
  Success,
} from "@capture/protocol"
import { HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import { CommonFailures } from "./Failures.js"

// Path ids become subjects: decoded by their pattern (a 400 naming the field).
const RtstreamParams = { rtstream_id: RtstreamId }
const IndexParams = { rtstream_id: RtstreamId, index_id: SceneIndexId }

export class SceneIndexGroup extends HttpApiGroup.make("sceneIndexes")
  .add(
    HttpApiEndpoint.post("createSceneIndex", SCENE_INDEXES_ROUTE, {
      params: RtstreamParams,
      payload: SceneIndexRequest,
      success: Success(SceneIndexView),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.get("listSceneIndexes", SCENE_INDEXES_ROUTE, {
      params: RtstreamParams,
      success: Success(SceneIndexList),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.get("getSceneIndex", SCENE_INDEX_ROUTE, {
      params: IndexParams,
      success: Success(SceneIndexView),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.get("getScenes", SCENE_INDEX_SCENES_ROUTE, {
      params: IndexParams,
      query: ScenesQuery,
      success: Success(ScenePage),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.patch("updateSceneIndex", SCENE_INDEX_SCENES_ROUTE, {
      params: IndexParams,
      payload: SceneIndexUpdateRequest,
      success: Success(SceneIndexUpdated),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.patch("setSceneIndexStatus", SCENE_INDEX_STATUS_ROUTE, {
      params: IndexParams,
      payload: SceneIndexStatusRequest,
      success: Success(SceneIndexView),
      error: CommonFailures,
    }),
  ) {}
