/**
 * The capture REST API as an effect HttpApi: one declaration that drives routing, decoding and
 * the OpenAPI document (`/openapi.json`, browsable at `/docs`). Paths and field names follow
 * VideoDB's capture API, so its SDKs work against this server.
 */
import {
  CaptureSession,
  CollectionId,
  CollectionView,
  CreateSessionRequest,
  CreateTokenRequest,
  ExportRequest,
  ExportView,
  FAIL_SESSION_ROUTE,
  FailSessionRequest,
  ListSessionsQuery,
  PAUSE_CHANNELS_ROUTE,
  PauseRequest,
  RESUME_CHANNELS_ROUTE,
  RevokedTokenView,
  SessionHistory,
  SessionId,
  SessionList,
  START_SESSION_ROUTE,
  STOP_SESSION_ROUTE,
  StartSessionRequest,
  StartSessionView,
  StreamingView,
  Success,
  TokenId,
  TokenView,
  WebhookDeliveryList,
  WebSocketUrlView,
} from "@capture/protocol"
import { Context } from "effect"
import {
  HttpApi,
  HttpApiEndpoint,
  HttpApiGroup,
  HttpApiMiddleware,
  HttpApiSecurity,
  OpenApi,
} from "effect/http-api"
import type { Principal } from "../accounts/AccountStore.js"
import { AlertGroup } from "./AlertApi.js"
import {
  BadRequest,
  CommonFailures,
  Conflict,
  PayloadTooLarge,
  Unauthorized,
  UnsupportedMediaType,
} from "./Failures.js"
import { RtstreamsGroup } from "./RtstreamApi.js"
import { SceneIndexGroup } from "./SceneIndexApi.js"
import { SearchGroup } from "./SearchApi.js"
import { TranscriptionGroup } from "./TranscriptionApi.js"
import { VideosGroup } from "./VideoApi.js"

/** The credential behind the current request. */
export class CurrentPrincipal extends Context.Service<CurrentPrincipal, Principal>()(
  "capture/CurrentPrincipal",
) {}

/** `x-access-token`: an account API key (`sk-…`) or a client token (`st-…`). */
export class Authentication extends HttpApiMiddleware.Service<
  Authentication,
  { provides: CurrentPrincipal }
>()("capture/Authentication", {
  error: Unauthorized,
  security: { accessToken: HttpApiSecurity.apiKey({ key: "x-access-token", in: "header" }) },
}) {}

/** Turns decoding failures (body, query, path) into the failure envelope naming the field. */
export class RequestDecoding extends HttpApiMiddleware.Service<RequestDecoding>()("capture/RequestDecoding", {
  error: [BadRequest, PayloadTooLarge, UnsupportedMediaType],
}) {}

// Path ids become KV keys and subjects: decoded by their patterns, so `..`, `*`, `>` or a NUL is
// a 400 naming the field before any handler runs.
const CollectionParams = { collection_id: CollectionId }
const SessionParams = { session_id: SessionId }
const CollectionSessionParams = { collection_id: CollectionId, session_id: SessionId }

export class CollectionsGroup extends HttpApiGroup.make("collections")
  .add(
    HttpApiEndpoint.get("getCollection", "/collection/:collection_id", {
      params: CollectionParams,
      success: Success(CollectionView),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.get("websocketUrl", "/collection/:collection_id/websocket", {
      params: CollectionParams,
      success: Success(WebSocketUrlView),
      error: CommonFailures,
    }),
  ) {}

export class SessionsGroup extends HttpApiGroup.make("sessions")
  .add(
    HttpApiEndpoint.post("createSession", "/collection/:collection_id/capture/session", {
      params: CollectionParams,
      payload: CreateSessionRequest,
      success: Success(CaptureSession),
      error: [...CommonFailures, Conflict],
    }),
  )
  .add(
    HttpApiEndpoint.get("listSessions", "/collection/:collection_id/capture/session", {
      params: CollectionParams,
      query: ListSessionsQuery,
      success: Success(SessionList),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.get("getSession", "/collection/:collection_id/capture/session/:session_id", {
      params: CollectionSessionParams,
      success: Success(CaptureSession),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.post("exportSession", "/collection/:collection_id/capture/session/:session_id/export", {
      params: CollectionSessionParams,
      payload: ExportRequest,
      success: Success(ExportView),
      error: [...CommonFailures, Conflict],
    }),
  )
  .add(
    HttpApiEndpoint.post("createToken", "/capture/session/token", {
      payload: CreateTokenRequest,
      success: Success(TokenView),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.delete("revokeToken", "/capture/session/token/:token_id", {
      params: { token_id: TokenId },
      success: Success(RevokedTokenView),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.post("startSession", START_SESSION_ROUTE, {
      payload: StartSessionRequest,
      success: Success(StartSessionView),
      error: [...CommonFailures, Conflict],
    }),
  )
  .add(
    HttpApiEndpoint.get("streamingView", "/capture/session/:session_id", {
      params: SessionParams,
      success: Success(StreamingView),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.post("stopSession", STOP_SESSION_ROUTE, {
      params: SessionParams,
      success: Success(CaptureSession),
      error: [...CommonFailures, Conflict],
    }),
  )
  .add(
    HttpApiEndpoint.post("pauseChannels", PAUSE_CHANNELS_ROUTE, {
      params: SessionParams,
      payload: PauseRequest,
      success: Success(CaptureSession),
      error: [...CommonFailures, Conflict],
    }),
  )
  .add(
    HttpApiEndpoint.post("resumeChannels", RESUME_CHANNELS_ROUTE, {
      params: SessionParams,
      payload: PauseRequest,
      success: Success(CaptureSession),
      error: [...CommonFailures, Conflict],
    }),
  )
  .add(
    HttpApiEndpoint.post("failSession", FAIL_SESSION_ROUTE, {
      params: SessionParams,
      payload: FailSessionRequest,
      success: Success(CaptureSession),
      error: [...CommonFailures, Conflict],
    }),
  )
  .add(
    HttpApiEndpoint.get("sessionHistory", "/collection/:collection_id/capture/session/:session_id/history", {
      params: CollectionSessionParams,
      success: Success(SessionHistory),
      error: CommonFailures,
    }),
  )
  .add(
    HttpApiEndpoint.get("webhookDeliveries", "/capture/session/:session_id/webhooks", {
      params: SessionParams,
      success: Success(WebhookDeliveryList),
      error: CommonFailures,
    }),
  ) {}

/** The whole API. */
export class CaptureApi extends HttpApi.make("capture")
  .add(CollectionsGroup)
  .add(SessionsGroup)
  .add(TranscriptionGroup)
  .add(SceneIndexGroup)
  .add(AlertGroup)
  .add(SearchGroup)
  .add(RtstreamsGroup)
  .add(VideosGroup)
  .middleware(RequestDecoding)
  .middleware(Authentication)
  // What /openapi.json promises (additionalProperties: false): a body field the API does not know is refused.
  .annotate(HttpApi.PayloadParseOptions, { onExcessProperty: "error" })
  .annotate(OpenApi.Title, "Capture API")
  .annotate(OpenApi.Version, "1")
  .annotate(
    OpenApi.Description,
    "Capture sessions: create, start, stop, export; live events over WebSocket and signed webhooks. " +
      "Every response is `{success: true, data}` or `{success: false, message, error_code, field?}`.",
  ) {}
