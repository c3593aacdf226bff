/**
 * The rtstream index routes (VideoDB's `rtstream.indexVisuals`, `indexScenes`, `indexAudio`,
 * `listSceneIndexes`, `getSceneIndex`, and a scene index's `getScenes`, `start`, `stop`,
 * `updateSceneIndex`), in the wire format RTSTREAM-REFERENCE.md records.
 */
import { Schema } from "effect"
import { SceneIndexKind } from "./AiEvent.js"
import { RtstreamId, SceneIndexId } from "./Ids.js"

/** `POST /rtstream/{id}/index/scene`; `GET` lists them. */
export const SCENE_INDEXES_ROUTE = "/rtstream/:rtstream_id/index/scene"
/** `GET`: one index (the SDK's `getSceneIndex`; no `scene` segment). */
export const SCENE_INDEX_ROUTE = "/rtstream/:rtstream_id/index/:index_id"
/** `GET`: the index's scenes (`getScenes`); `PATCH`: a new prompt (`updateSceneIndex`). */
export const SCENE_INDEX_SCENES_ROUTE = "/rtstream/:rtstream_id/index/scene/:index_id"
/** `PATCH {action: "start" | "stop"}`. */
export const SCENE_INDEX_STATUS_ROUTE = "/rtstream/:rtstream_id/index/scene/:index_id/status"

const ConnectionId = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(128))
const JsonObject = Schema.Record(Schema.String, Schema.Unknown)

/** The longest prompt accepted. */
export const MAX_PROMPT_LENGTH = 4_000

/**
 * `POST /rtstream/{id}/index/scene`. A display takes `time_based` (or `shot_based`, read the same
 * way) with `extraction_config {time, frame_count}`; mic and system audio take `transcript` with
 * `{segmenter: "word" | "sentence" | "time", segmentation_value}`. Everything may be absent
 * (defaults in docs/ai.md); the config's numbers are checked by the AI package, naming the field.
 */
export const SceneIndexRequest = Schema.Struct({
  extraction_type: Schema.optionalKey(
    Schema.NullOr(Schema.Literals(["time_based", "shot_based", "transcript"])),
  ),
  extraction_config: Schema.optionalKey(Schema.NullOr(JsonObject)),
  prompt: Schema.optionalKey(Schema.NullOr(Schema.String.check(Schema.isMaxLength(MAX_PROMPT_LENGTH)))),
  model_name: Schema.optionalKey(Schema.NullOr(Schema.String.check(Schema.isMaxLength(128)))),
  model_config: Schema.optionalKey(Schema.NullOr(JsonObject)),
  name: Schema.optionalKey(Schema.NullOr(Schema.String.check(Schema.isMaxLength(256)))),
  ws_connection_id: Schema.optionalKey(Schema.NullOr(ConnectionId)),
  auto_start_transcript: Schema.optionalKey(Schema.NullOr(Schema.Boolean)),
})
export type SceneIndexRequest = typeof SceneIndexRequest.Type

/** Whether an index runs. */
export const SceneIndexStatus = Schema.Literals(["connected", "stopped"])
export type SceneIndexStatus = typeof SceneIndexStatus.Type

/** An index as create, list and get answer it. */
export const SceneIndexView = Schema.Struct({
  rtstream_index_id: SceneIndexId,
  rtstream_id: RtstreamId,
  kind: SceneIndexKind,
  extraction_type: Schema.String,
  extraction_config: JsonObject,
  prompt: Schema.String,
  name: Schema.String,
  model_name: Schema.NullOr(Schema.String),
  status: SceneIndexStatus,
})
export type SceneIndexView = typeof SceneIndexView.Type

export const SceneIndexList = Schema.Struct({ scene_indexes: Schema.Array(SceneIndexView) })
export type SceneIndexList = typeof SceneIndexList.Type

/** `PATCH …/index/scene/{idx}/status`. */
export const SceneIndexStatusRequest = Schema.Struct({ action: Schema.Literals(["start", "stop"]) })
export type SceneIndexStatusRequest = typeof SceneIndexStatusRequest.Type

/** `PATCH …/index/scene/{idx}`: a new prompt for the batches still to come. */
export const SceneIndexUpdateRequest = Schema.Struct({
  prompt: Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(MAX_PROMPT_LENGTH)),
})
export type SceneIndexUpdateRequest = typeof SceneIndexUpdateRequest.Type

/** The update's answer: the SDK reads `success` (and the index's new prompt). */
export const SceneIndexUpdated = Schema.Struct({ success: Schema.Boolean, ...SceneIndexView.fields })
export type SceneIndexUpdated = typeof SceneIndexUpdated.Type

/** The largest `page_size` of a scene list. */
export const MAX_SCENE_PAGE_SIZE = 1000

const IntFromString = (minimum: number, maximum: number, what: string) =>
  Schema.NumberFromString.check(
    Schema.isInt(),
    Schema.isBetween({ minimum, maximum }, { message: `expected ${what}` }),
  )
const TimeFromString = Schema.NumberFromString.check(
  Schema.isFinite(),
  Schema.isGreaterThanOrEqualTo(0, {
    message: "expected a time in Unix seconds (or epoch ms), not negative",
  }),
)

/** `GET …/index/scene/{idx}`: `start`/`end` in Unix seconds (values of 10^11 and more are ms). */
export const ScenesQuery = Schema.Struct({
  page: Schema.optionalKey(IntFromString(1, 1_000_000, "a page number from 1")),
  page_size: Schema.optionalKey(
    IntFromString(1, MAX_SCENE_PAGE_SIZE, `an integer from 1 to ${MAX_SCENE_PAGE_SIZE}`),
  ),
  start: Schema.optionalKey(TimeFromString),
  end: Schema.optionalKey(TimeFromString),
})
export type ScenesQuery = typeof ScenesQuery.Type

/** One scene: `start`/`end` in Unix seconds (what `generateStream` takes), `text` = `description`. */
export const SceneRecord = Schema.Struct({
  id: Schema.String,
  start: Schema.Finite,
  end: Schema.Finite,
  text: Schema.String,
  description: Schema.String,
  metadata: JsonObject,
})
export type SceneRecord = typeof SceneRecord.Type

/** A page of an index's scenes, oldest first. */
export const ScenePage = Schema.Struct({
  rtstream_index_id: SceneIndexId,
  scene_index_records: Schema.Array(SceneRecord),
  page: Schema.Int,
  page_size: Schema.Int,
  /** The next page's number, null on the last. */
  next_page: Schema.NullOr(Schema.Int),
  total: Schema.Int,
})
export type ScenePage = typeof ScenePage.Type
