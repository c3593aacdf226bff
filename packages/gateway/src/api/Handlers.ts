/**
 * The capture API's handlers: commands go to the session actor host, reads come from the read
 * model (falling back to the actor for a session the projector has not written yet).
 */

import { currentSpanParent, inSpan, type SpanParent } from "@capture/jetstream"
import {
  CaptureError,
  type CaptureSession,
  type CollectionId,
  captureError,
  type ExportView,
  newCommandId,
  newSessionId,
  type PauseRequest,
  pushDefaultChannels,
  type SessionCommand,
  type SessionId,
  SessionId as SessionIdSchema,
  streamingChannel,
  successOf,
} from "@capture/protocol"
import { type LoadedSession, replaySession, toCaptureSession } from "@capture/session-actor"
import { Effect, Layer, Result, Schema } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { authorizeSession, sessionNotFound } from "../access/SessionAccess.js"
import { credentialChain, type Principal } from "../accounts/AccountStore.js"
import { GatewayServices, type GatewayServicesShape, toWebSocketUrl } from "../GatewayContext.js"
import { liveStreamUrl } from "../ingest/LiveRoutes.js"
import { checkPushChannels, pushChannels, rtmpAnswer } from "../ingest/PushSessions.js"
import { whipAnswer } from "../ingest/WhipRoutes.js"
import { AlertLive } from "./AlertHandlers.js"
import { CaptureApi, CurrentPrincipal } from "./CaptureApi.js"
import { type Failure, toFailure } from "./Failures.js"
import { checkChannels, checkMetadata } from "./RequestLimits.js"
import { SceneIndexLive } from "./SceneIndexHandlers.js"
import { SearchLive } from "./SearchHandlers.js"
import { TranscriptionLive } from "./TranscriptionHandlers.js"
import { VideosLive } from "./VideoHandlers.js"

const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/** A storage call; its failure is ours (503), never the client's. */
export const call = <A>(label: string, f: () => Promise<A>): Effect.Effect<A, Failure> =>
  Effect.tryPromise({
    try: f,
    catch: (error) => toFailure(captureError("unavailable", `${label}: ${describe(error)}`)),
  })

/**
 * Runs an AI command (what a route under `/rtstream/{id}` stores on the AI stream: a
 * transcription's start or stop, an index's or an alert's creation or change; a detection event,
 * which is the account's, names no rtstream) in a span
 * `ai <name>` of the request's trace, as session commands run in `command <type>`; `run` hands the
 * span on to what it stores, whose consumers continue it. Storage trouble is a 503 naming `label`.
 */
export const aiCommand = <A>(
  name: string,
  label: string,
  target: { readonly rtstream_id?: string; readonly session_id?: string },
  run: (span: SpanParent | undefined) => Promise<A>,
): Effect.Effect<A, Failure> =>
  currentSpanParent.pipe(
    Effect.flatMap((parent) =>
      call(label, () =>
        inSpan(
          `ai ${name}`,
          {
            parent,
            attributes: {
              ...(target.rtstream_id === undefined ? {} : { "capture.rtstream_id": target.rtstream_id }),
              ...(target.session_id === undefined ? {} : { "capture.session_id": target.session_id }),
            },
          },
          async (span) => {
            const result = await run(span)
            // A refusal is an answer, not a failed span: its code is the outcome.
            const refused = Result.isResult(result) && Result.isFailure(result) ? result.failure : undefined
            span?.attribute("capture.outcome", refused instanceof CaptureError ? refused.error_code : "done")
            return result
          },
        ),
      ),
    ),
  )

export const refuse = (error: CaptureError): Effect.Effect<never, Failure> => Effect.fail(toFailure(error))

export const fromResult = <A>(result: Result.Result<A, CaptureError>): Effect.Effect<A, Failure> =>
  Result.isSuccess(result) ? Effect.succeed(result.success) : refuse(result.failure)

const isSessionId = Schema.is(SessionIdSchema)

/** Client tokens may start, stop, pause, resume, fail, upload and listen; everything else needs an API key. */
export const requireApiKey = (principal: Principal) =>
  principal.kind === "api_key"
    ? Effect.void
    : refuse(
        captureError(
          "forbidden",
          "client tokens may only start, stop, pause, resume, fail and upload to sessions and open a WebSocket",
          {
            field: "x-access-token",
          },
        ),
      )

/**
 * A client token drives its end user's recorder; what the account configures (where its signed
 * webhooks go) only an API key may set.
 */
const refuseKeyOnlyField = (principal: Principal, field: string, value: unknown) =>
  principal.kind === "client_token" && value !== null && value !== undefined
    ? refuse(captureError("forbidden_field", `only an API key may set ${field}`, { field }))
    : Effect.void

const refuseIf = (error: CaptureError | undefined) => (error === undefined ? Effect.void : refuse(error))

/**
 * A session's events go only to a socket of its own end user or, from a credential of no end
 * user, an account-wide one: never to another end user's socket.
 */
const checkConnection = (
  services: GatewayServicesShape,
  principal: Principal,
  session: { readonly account_id: string; readonly end_user_id: string },
  connectionId: string | null | undefined,
) =>
  connectionId === null ||
  connectionId === undefined ||
  services.connectionIds.mayName(connectionId, principal, session)
    ? Effect.void
    : refuse(
        captureError(
          "forbidden",
          "ws_connection_id is not a WebSocket of this session's end user or of its account",
          { field: "ws_connection_id" },
        ),
      )

export const requireCollection = (
  services: GatewayServicesShape,
  principal: Principal,
  collectionId: string,
) =>
  Effect.flatMap(
    call("reading the collection", () => services.accounts.collection(principal.account_id, collectionId)),
    (collection) =>
      collection === undefined
        ? refuse(
            captureError("collection_not_found", `no collection ${collectionId}`, { field: "collection_id" }),
          )
        : Effect.succeed(collection),
  )

/** The session as the actor holds it, if this principal may act on it (see `authorizeSession`). */
const loadOwned = (
  services: GatewayServicesShape,
  principal: Principal,
  sessionId: string,
): Effect.Effect<LoadedSession, Failure> =>
  Effect.flatMap(
    call("loading the session", () => authorizeSession(services.runtime.host, principal, sessionId)),
    fromResult,
  )

/**
 * The session as this gateway last knew it, if this principal may act on it: for a command,
 * which the actor judges on current state anyway, and for what never changes once stored
 * (account, end user, collection). No lookup on the stream for a session it knows.
 */
const requireOwned = (
  services: GatewayServicesShape,
  principal: Principal,
  sessionId: string,
): Effect.Effect<LoadedSession, Failure> =>
  Effect.flatMap(
    call("loading the session", () => authorizeSession(services.runtime.host, principal, sessionId, "known")),
    fromResult,
  )

/** The client view of a session read from the read model, or from the actor when not projected yet. */
const readSession = (services: GatewayServicesShape, principal: Principal, sessionId: string) =>
  Effect.gen(function* () {
    if (!isSessionId(sessionId)) return yield* refuse(sessionNotFound(sessionId))
    const record = yield* call("reading the session", () => services.runtime.readModel.get(sessionId))
    if (record !== undefined) {
      if (record.account_id !== principal.account_id) return yield* refuse(sessionNotFound(sessionId))
      return record.session
    }
    const loaded = yield* loadOwned(services, principal, sessionId)
    const view = toCaptureSession(loaded.state)
    return view ?? (yield* refuse(sessionNotFound(sessionId)))
  })

/**
 * Runs a command on its session's actor, in the trace of the request; refusals keep their code,
 * storage trouble is a 503.
 */
export const execute = (services: GatewayServicesShape, command: SessionCommand) =>
  currentSpanParent.pipe(
    Effect.flatMap((parent) =>
      call("storing the command", () => services.runtime.host.execute(command, parent)),
    ),
    Effect.flatMap(fromResult),
  )

const viewOf = (
  state: LoadedSession["state"],
  sessionId: SessionId,
): Effect.Effect<CaptureSession, Failure> => {
  const view = toCaptureSession(state)
  return view === null ? refuse(sessionNotFound(sessionId)) : Effect.succeed(view)
}

/** Pauses or resumes channels of a session its principal owns (a client token's recorder does it). */
const pauseOrResume = (
  services: GatewayServicesShape,
  type: "PauseChannels" | "ResumeChannels",
  params: { readonly session_id: string },
  payload: PauseRequest,
) =>
  Effect.gen(function* () {
    const principal = yield* CurrentPrincipal
    yield* requireOwned(services, principal, params.session_id)
    const sessionId = params.session_id as SessionId
    const outcome = yield* execute(services, {
      type,
      command_id: newCommandId(),
      session_id: sessionId,
      ...(payload.channel_ids === undefined ? {} : { channel_ids: payload.channel_ids }),
      ...(payload.at_ms === undefined ? {} : { at_ms: payload.at_ms }),
    })
    return successOf(yield* viewOf(outcome.state, sessionId))
  })

/** Optional strings arrive as absent, null or a value; commands want absent or a value. */
const present = <K extends string>(key: K, value: string | null | undefined): { [P in K]?: string } =>
  (value === null || value === undefined ? {} : { [key]: value }) as { [P in K]?: string }

const checkCallback = (services: GatewayServicesShape, url: string | null | undefined, field: string) =>
  url === null || url === undefined
    ? Effect.void
    : Effect.flatMap(
        call("checking the callback URL", () => services.checkCallbackUrl(url, field)),
        (result) => Effect.asVoid(fromResult(result)),
      )

export const CollectionsLive = HttpApiBuilder.group(CaptureApi, "collections", (handlers) =>
  Effect.gen(function* () {
    const services = yield* GatewayServices
    return handlers
      .handle("getCollection", ({ params }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          yield* requireApiKey(principal)
          const collection = yield* requireCollection(services, principal, params.collection_id)
          return successOf({ id: collection.id, name: collection.name, description: collection.description })
        }),
      )
      .handle("websocketUrl", ({ params }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          yield* requireCollection(services, principal, params.collection_id)
          // Browsers cannot set headers on a WebSocket: the URL carries a credential, never the
          // caller's own. A short-lived token that only opens sockets, of the caller's end user,
          // dies with the credential that issued it.
          const remainingSeconds =
            principal.kind === "client_token"
              ? Math.floor((Date.parse(principal.expires_at) - Date.now()) / 1000)
              : Number.POSITIVE_INFINITY
          const { token } = yield* call("issuing a WebSocket token", () =>
            services.accounts.createClientToken(principal.account_id, {
              expiresInSeconds: Math.max(
                1,
                Math.min(services.config.webSocketTokenSeconds, remainingSeconds),
              ),
              endUserId: principal.kind === "client_token" ? (principal.end_user_id ?? undefined) : undefined,
              issuers: credentialChain(principal),
              scope: "websocket",
            }),
          )
          const url = `${toWebSocketUrl(services.config.publicUrl)}/ws?token=${encodeURIComponent(token)}&collection_id=${encodeURIComponent(params.collection_id)}`
          return successOf({ websocket_url: url })
        }),
      )
  }),
)

export const SessionsLive = HttpApiBuilder.group(CaptureApi, "sessions", (handlers) =>
  Effect.gen(function* () {
    const services = yield* GatewayServices
    return handlers
      .handle("createSession", ({ params, payload }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          yield* requireApiKey(principal)
          yield* refuseIf(checkMetadata(payload.metadata, services.config))
          const collection = yield* requireCollection(services, principal, params.collection_id)
          yield* checkCallback(services, payload.callback_url, "callback_url")
          yield* checkConnection(
            services,
            principal,
            { account_id: principal.account_id, end_user_id: payload.end_user_id },
            payload.ws_connection_id,
          )
          const sessionId = newSessionId()
          const outcome = yield* execute(services, {
            type: "CreateSession",
            command_id: newCommandId(),
            session_id: sessionId,
            collection_id: collection.id as CollectionId,
            end_user_id: payload.end_user_id,
            account_id: principal.account_id,
            ...present("client_id", payload.client_id),
            ...present("callback_url", payload.callback_url),
            ...present("ws_connection_id", payload.ws_connection_id),
            ...(payload.metadata === null || payload.metadata === undefined
              ? {}
              : { metadata: payload.metadata }),
          })
          return successOf(yield* viewOf(outcome.state, sessionId))
        }),
      )
      .handle("listSessions", ({ params, query }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          yield* requireApiKey(principal)
          yield* requireCollection(services, principal, params.collection_id)
          const page = yield* call("listing sessions", () =>
            services.runtime.readModel.list({
              account_id: principal.account_id,
              collection_id: params.collection_id,
              ...(query.status === undefined ? {} : { status: query.status }),
              ...(query.end_user_id === undefined ? {} : { end_user_id: query.end_user_id }),
              limit: query.limit ?? 20,
              ...(query.cursor === undefined ? {} : { cursor: query.cursor }),
            }),
          )
          return successOf({ sessions: page.sessions, next_page: page.next_page })
        }),
      )
      .handle("getSession", ({ params }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          yield* requireApiKey(principal)
          const session = yield* readSession(services, principal, params.session_id)
          if (session.collection_id !== params.collection_id) {
            return yield* refuse(sessionNotFound(params.session_id))
          }
          return successOf(session)
        }),
      )
      .handle("exportSession", ({ params, payload }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          yield* requireApiKey(principal)
          const loaded = yield* requireOwned(services, principal, params.session_id)
          if (loaded.state.context.collection_id !== params.collection_id) {
            return yield* refuse(sessionNotFound(params.session_id))
          }
          yield* checkConnection(services, principal, loaded.state.context, payload.ws_connection_id)
          const sessionId = params.session_id as SessionId
          const outcome = yield* execute(services, {
            type: "RequestExport",
            command_id: newCommandId(),
            session_id: sessionId,
            ...present("video_channel_id", payload.video_channel_id),
            ...present("ws_connection_id", payload.ws_connection_id),
          })
          const context = outcome.state.context
          const channel = payload.video_channel_id ?? context.primary_video_channel_id
          const found = context.exports.find((e) => e.video_channel_id === channel)
          const view: ExportView = {
            session_id: sessionId,
            video_channel_id: found?.video_channel_id ?? channel ?? null,
            export_status: found?.export_status ?? "exporting",
            video_id: found?.video_id ?? null,
            stream_url: found?.stream_url ?? null,
            player_url: found?.player_url ?? null,
          }
          return successOf(view)
        }),
      )
      .handle("createToken", ({ payload }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          yield* requireApiKey(principal)
          const expiresIn = payload.expires_in ?? services.config.defaultTokenSeconds
          const endUserId = payload.end_user_id ?? payload.user_id ?? undefined
          const { token, record } = yield* call("issuing the token", () =>
            services.accounts.createClientToken(principal.account_id, {
              expiresInSeconds: expiresIn,
              endUserId,
              issuers: credentialChain(principal),
            }),
          )
          return successOf({
            token,
            token_id: record.token_id,
            expires_at: record.expires_at,
            expires_in: expiresIn,
            end_user_id: record.end_user_id,
          })
        }),
      )
      .handle("revokeToken", ({ params }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          yield* requireApiKey(principal)
          const revoked = yield* call("revoking the token", () =>
            services.accounts.revokeClientTokenById(principal.account_id, params.token_id),
          )
          // Another account's token is not found either: its existence is not revealed.
          if (revoked === undefined) {
            return yield* refuse(
              captureError("token_not_found", `no client token ${params.token_id}`, { field: "token_id" }),
            )
          }
          return successOf({
            token_id: revoked.token_id,
            end_user_id: revoked.end_user_id,
            revoked_at: revoked.revoked_at ?? new Date().toISOString(),
          })
        }),
      )
      .handle("startSession", ({ payload }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          yield* refuseKeyOnlyField(principal, "callback_url", payload.callback_url)
          const source = payload.source ?? "recorder"
          const pushed = source === "recorder" ? undefined : source
          const channels = payload.channels ?? (pushed === undefined ? [] : pushDefaultChannels(pushed))
          yield* refuseIf(checkChannels(channels, services.config))
          if (pushed !== undefined) {
            if (services[pushed] === undefined) {
              return yield* refuse(
                captureError(
                  "source_unavailable",
                  pushed === "rtmp"
                    ? "this server does not listen for RTMP (CAPTURE_RTMP_PORT)"
                    : "this server takes no WHIP publishes (CAPTURE_WHIP_ICE_ADDRESSES)",
                  { field: "source" },
                ),
              )
            }
            yield* refuseIf(checkPushChannels(channels))
          }
          const loaded = yield* requireOwned(services, principal, payload.session_id)
          yield* checkConnection(services, principal, loaded.state.context, payload.ws_connection_id)
          yield* checkCallback(services, payload.callback_url, "callback_url")
          const outcome = yield* execute(services, {
            type: "StartSession",
            command_id: newCommandId(),
            session_id: payload.session_id,
            channels,
            ...present("primary_video_channel_id", payload.primary_video_channel_id),
            ...present("ws_connection_id", payload.ws_connection_id),
            ...present("callback_url", payload.callback_url),
          } as SessionCommand)
          const started = { session_id: payload.session_id, status: outcome.state.value as "starting" }
          if (pushed === undefined) return successOf(started)
          const context = outcome.state.context
          const video = pushChannels(context.channels, context.primary_video_channel_id).video
          const { rtmp, whip } = services
          return successOf({
            ...started,
            ...(pushed === "rtmp" && rtmp !== undefined ? rtmpAnswer(rtmp, payload.session_id) : {}),
            ...(pushed === "whip" && whip !== undefined
              ? whipAnswer(services.config.publicUrl, whip, payload.session_id)
              : {}),
            ...(video === undefined
              ? {}
              : {
                  hls_url: liveStreamUrl(
                    services.config.publicUrl,
                    services.signer,
                    payload.session_id,
                    video.channel_id,
                  ),
                }),
          })
        }),
      )
      .handle("streamingView", ({ params }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const loaded = yield* loadOwned(services, principal, params.session_id)
          const context = loaded.state.context
          const records = yield* call("listing media", () => services.media.list(params.session_id))
          const recordedChannels = new Set(records.map((r) => r.channel_id))
          return successOf({
            session_id: params.session_id as SessionId,
            status: loaded.state.value as CaptureSession["status"],
            channels: context.channels.map((channel) =>
              streamingChannel(
                channel,
                recordedChannels.has(channel.channel_id)
                  ? liveStreamUrl(
                      services.config.publicUrl,
                      services.signer,
                      params.session_id,
                      channel.channel_id,
                    )
                  : null,
              ),
            ),
          })
        }),
      )
      .handle("stopSession", ({ params }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          yield* requireOwned(services, principal, params.session_id)
          const sessionId = params.session_id as SessionId
          const outcome = yield* execute(services, {
            type: "StopSession",
            command_id: newCommandId(),
            session_id: sessionId,
          })
          return successOf(yield* viewOf(outcome.state, sessionId))
        }),
      )
      .handle("pauseChannels", ({ params, payload }) =>
        pauseOrResume(services, "PauseChannels", params, payload),
      )
      .handle("resumeChannels", ({ params, payload }) =>
        pauseOrResume(services, "ResumeChannels", params, payload),
      )
      .handle("failSession", ({ params, payload }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          yield* requireOwned(services, principal, params.session_id)
          const sessionId = params.session_id as SessionId
          // The recorder's reason becomes the session's `error`: failed once, a repeat changes nothing.
          const outcome = yield* execute(services, {
            type: "FailSession",
            command_id: newCommandId(),
            session_id: sessionId,
            error: { code: payload.error.code, message: payload.error.message },
          })
          return successOf(yield* viewOf(outcome.state, sessionId))
        }),
      )
      .handle("sessionHistory", ({ params }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          yield* requireApiKey(principal)
          const loaded = yield* requireOwned(services, principal, params.session_id)
          if (loaded.state.context.collection_id !== params.collection_id) {
            return yield* refuse(sessionNotFound(params.session_id))
          }
          const history = yield* call("reading the session's history", () =>
            replaySession(services.runtime.events, params.session_id),
          )
          return successOf({
            session_id: params.session_id as SessionId,
            events: history.events.map((step) => ({
              ...step,
              state: { status: step.state.status, context: { ...step.state.context } },
            })),
            error: history.error,
          })
        }),
      )
      .handle("webhookDeliveries", ({ params }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          yield* requireApiKey(principal)
          yield* requireOwned(services, principal, params.session_id)
          const deliveries = yield* call("reading webhook deliveries", () =>
            services.webhookDeliveries(params.session_id as SessionId),
          )
          return successOf(deliveries)
        }),
      )
  }),
)

/** Every handler group of the API. */
export const HandlersLive = Layer.mergeAll(
  CollectionsLive,
  SessionsLive,
  TranscriptionLive,
  SceneIndexLive,
  AlertLive,
  SearchLive,
  VideosLive,
)
