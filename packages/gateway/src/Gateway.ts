/**
 * One gateway instance: the account store, the WebSocket hub, the webhook dispatcher, and the
 * HTTP routes (the capture API, its OpenAPI document and docs page, the WebSocket endpoint, the
 * console and the player's files).
 * Any number of instances may run against one NATS: each shares the stores and the webhook
 * consumer, and follows the event stream for its own sockets.
 */

import {
  AiStore,
  type ChatModelChoice,
  type EngineChoice,
  NO_CHAT_MODELS,
  SearchIndex,
  SearchProjection,
} from "@capture/ai"
import { resolveFfmpeg } from "@capture/binaries"
import { ExportStore, MediaStore } from "@capture/media"
import { captureError, type RtstreamId, type SessionId, type WebhookSecret } from "@capture/protocol"
import { type SessionRuntime, toCaptureSession } from "@capture/session-actor"
import { Layer } from "effect"
import { HttpApiBuilder, HttpApiScalar } from "effect/http-api"
import { UrlSigner } from "./access/SignedUrls.js"
import { AccountStore } from "./accounts/AccountStore.js"
import { AlertDeliveryLog, type AlertOwner } from "./alerts/AlertDeliveryLog.js"
import { DetectionEvents } from "./alerts/DetectionEvents.js"
import { CaptureApi } from "./api/CaptureApi.js"
import { TrustedProxies } from "./api/ClientAddress.js"
import { HandlersLive } from "./api/Handlers.js"
import { AuthenticationLive, RequestDecodingLive } from "./api/Middleware.js"
import { RateLimiter, rateLimits } from "./api/RateLimits.js"
import { jsonBodyLimits } from "./api/RequestLimits.js"
import { responseEnvelope } from "./api/ResponseEnvelope.js"
import { RtstreamHandlersLive } from "./api/RtstreamHandlers.js"
import { consoleRoutes } from "./console/ConsoleRoutes.js"
import { exportRoutes } from "./exports/ExportRoutes.js"
import { type GatewayConfig, GatewayServices, type GatewayServicesShape } from "./GatewayContext.js"
import { clipRoutes } from "./ingest/ClipRoutes.js"
import { ingestRoute } from "./ingest/IngestRoute.js"
import { liveRoutes } from "./ingest/LiveRoutes.js"
import { PublishLeases } from "./ingest/PublishLeases.js"
import { PushSessions, rtmpAdmission } from "./ingest/PushSessions.js"
import { RtmpIngest } from "./ingest/RtmpIngest.js"
import { StorageQuota } from "./ingest/StorageQuota.js"
import { StreamKeys } from "./ingest/StreamKeys.js"
import { UploadSlots } from "./ingest/UploadSlots.js"
import { WhipIngest } from "./ingest/WhipIngest.js"
import { whipRoutes } from "./ingest/WhipRoutes.js"
import { assertLimitsFit, DEFAULT_WS_MAX_MESSAGE_BYTES, type GatewayLimits, limitsOf } from "./Limits.js"
import { checkCallbackUrl } from "./webhooks/CallbackUrlPolicy.js"
import { DeliveryLog } from "./webhooks/DeliveryLog.js"
import {
  callbackUrlPolicyOf,
  startWebhookDelivery,
  type WebhookDeliveryOptions,
} from "./webhooks/WebhookDelivery.js"
import { AiResultFeed } from "./websocket/AiResultFeed.js"
import { boundedWebSocketClass, type WebSocketLimits } from "./websocket/BoundedWebSocket.js"
import { ConnectionIds } from "./websocket/ConnectionIds.js"
import { WebSocketHub } from "./websocket/WebSocketHub.js"
import { webSocketRoute } from "./websocket/WebSocketRoute.js"

/** The RTMP listener for pushed sessions (`source: "rtmp"`); off unless given. */
export interface RtmpOptions {
  readonly host: string
  /** 0: any free port (tests). */
  readonly port: number
  /** What publishers are told to push to, without the stream key; default `rtmp://<host>:<port>/live`. */
  readonly publicUrl?: string | undefined
  /** How long a session waits for its publisher to come back before it stops (ms; default 10 s). */
  readonly graceMs?: number | undefined
  /** How long a publish lease outlives the gateway holding it (ms; default 15 s). */
  readonly leaseTtlMs?: number | undefined
  /** Length of the segments a publish is cut into (s; default 2, as the recorder's). */
  readonly segmentSeconds?: number | undefined
}

/** WHIP publishes for pushed sessions (`source: "whip"`) on the HTTP port; off unless given. */
export interface WhipOptions {
  /** Local addresses ICE host candidates are gathered on and offered to publishers (e.g. 127.0.0.1). */
  readonly iceAddresses: ReadonlyArray<string>
  /** UDP ports ICE may take (inclusive); default any. */
  readonly icePortRange?: readonly [number, number] | undefined
  /** How long a session waits for its publisher to come back before it stops (ms; default 10 s). */
  readonly graceMs?: number | undefined
  /** How long a publish lease outlives the gateway holding it (ms; default 15 s). */
  readonly leaseTtlMs?: number | undefined
  /** Length of the segments a publish is cut into (s; default 2, as the recorder's). */
  readonly segmentSeconds?: number | undefined
  /** A publish with no media for this long has ended (ms; default 10 s). */
  readonly mediaTimeoutMs?: number | undefined
}

/** The RTMP application publishers push to: `rtmp://host:port/live/<stream key>`. */
export const RTMP_APP = "live"

/** The gateway's settings; a limit left out has its `DEFAULT_LIMITS` value. */
export interface GatewayOptions
  extends Omit<GatewayConfig, keyof GatewayLimits>,
    Partial<GatewayLimits>,
    WebhookDeliveryOptions {
  /** Run the webhook dispatchers in this process (default true); off, another process runs them (`--role workers`). */
  readonly deliverWebhooks?: boolean | undefined
  /** Where this process keeps its search index (SQLite); default in memory, rebuilt from the AI stream at start. */
  readonly searchDbPath?: string | undefined
  /** How often each gateway purges expired client tokens and revocation markers (ms; default a minute). */
  readonly expiryPurgeIntervalMs?: number | undefined
  /** Width of an expiry slot (ms; default an hour): tests shorten it. */
  readonly expirySlotMs?: number | undefined
  /** How often each gateway adds the requests it admitted to the shared rate limit counts (ms). */
  readonly rateLimitSyncMs?: number | undefined
  /** Reverse proxies whose `X-Forwarded-For` names the client (`CAPTURE_TRUSTED_PROXIES`: addresses, CIDRs). */
  readonly trustedProxies?: string | undefined
  readonly webSocket: WebSocketLimits
  /** Transcription engines offered (as the AI workers are configured) and the default; default: local only. */
  readonly transcription?: EngineChoice | undefined
  /** The chat models indexes may name (`CAPTURE_CHAT_MODEL`, `CAPTURE_CHAT_MODELS`); absent: none. */
  readonly chatModels?: ChatModelChoice | undefined
  /** `CAPTURE_API_KEY`: a key the first account gets, for scripts and tests. */
  readonly seedApiKey?: string | undefined
  /** `CAPTURE_WEBHOOK_SECRET`: the first account's signing secret. */
  readonly seedWebhookSecret?: WebhookSecret | undefined
  /** RTMP ingest (`CAPTURE_RTMP_PORT`); undefined: off. */
  readonly rtmp?: RtmpOptions | undefined
  /** WHIP ingest (`CAPTURE_WHIP_ICE_ADDRESSES`); undefined: off. */
  readonly whip?: WhipOptions | undefined
  readonly log: (message: string) => void
}

export interface Gateway {
  readonly accounts: AccountStore
  readonly hub: WebSocketHub
  readonly exports: ExportStore
  readonly services: GatewayServicesShape
  readonly rateLimiter: RateLimiter
  /** The HTTP server's `ws` options: every upgraded socket is bounded and heartbeated. */
  readonly webSocketServerOptions: { readonly WebSocket: unknown; readonly maxPayload: number }
  readonly webSocketStats: { readonly dropped: number; readonly reaped: number }
  /** The port the RTMP listener took, when it listens. */
  readonly rtmpPort: number | undefined
  /** A plain API key created on this start (first start of a deployment), to print once. */
  readonly firstApiKey: string | undefined
  readonly log: (message: string) => void
  readonly stop: () => Promise<void>
}

/** Opens the stores, seeds the first account, and starts the hub and the webhook dispatcher. */
export const startGateway = async (runtime: SessionRuntime, options: GatewayOptions): Promise<Gateway> => {
  const { nc, options: topology } = runtime.topology
  const limits = limitsOf(options)
  // A wrong entry stops the start here, before anything is opened.
  const trustedProxies = TrustedProxies.parse(options.trustedProxies ?? "")
  assertLimitsFit(limits, nc.info?.max_payload ?? 1024 * 1024)
  const policy = callbackUrlPolicyOf(options)
  // What has started, stopped last first: by `stop`, and when a later step of the start fails (say
  // NATS timing out while a node is down), so a failed start leaves nothing running and may be retried.
  const undo: Array<() => unknown> = []
  const undoAll = async (onFailure: (error: unknown) => void) => {
    for (const step of undo.splice(0).reverse()) await Promise.resolve().then(step).catch(onFailure)
  }
  try {
    const accounts = await AccountStore.open(nc, {
      ...topology,
      log: options.log,
      expirySlotMs: options.expirySlotMs,
    })
    undo.push(() => accounts.close())
    const first = await accounts.firstAccount()
    let firstApiKey: string | undefined
    if (options.seedApiKey !== undefined && options.seedApiKey !== "") {
      const seeded = await accounts.ensureApiKey(first.account.id, options.seedApiKey)
      if (seeded.revoked_at !== null) {
        options.log(
          `CAPTURE_API_KEY names key ${seeded.key_id}, revoked at ${seeded.revoked_at}: it stays revoked`,
        )
      } else if (seeded.account_id !== first.account.id) {
        options.log(
          `CAPTURE_API_KEY names key ${seeded.key_id} of account ${seeded.account_id}, not the first account`,
        )
      }
    } else {
      firstApiKey = await accounts.createFirstApiKey(first.account.id)
    }
    if (options.seedWebhookSecret !== undefined) {
      await accounts.ensureWebhookSecret(first.account.id, options.seedWebhookSecret)
    }

    const deliveryLog = await DeliveryLog.open(runtime.topology)
    const alertDeliveryLog = await AlertDeliveryLog.open(nc, topology)
    const ai = await AiStore.open(nc, topology)
    undo.push(() => ai.close())
    if (options.deliverWebhooks !== false) {
      const delivery = await startWebhookDelivery(runtime, { accounts, ai }, options)
      undo.push(() => delivery.stop())
    }
    const media = await MediaStore.open(nc, { ...topology, log: options.log })
    const quota = await StorageQuota.open(nc, { ...topology, limits, log: options.log })
    undo.push(() => quota.stop())
    const rateLimiter = await RateLimiter.open(nc, {
      ...topology,
      settings: limits,
      syncMs: options.rateLimitSyncMs,
      trustedProxies,
      log: options.log,
    })
    undo.push(() => rateLimiter.stop())
    const deploymentKey = await accounts.urlSigningKey()
    const signer = new UrlSigner(deploymentKey)
    const exports = await ExportStore.open(nc, { ...topology, log: options.log })
    const hub = new WebSocketHub(runtime, options.log)
    undo.push(() => hub.stop())
    await hub.start()
    // Revoked on any gateway: this one closes the sockets it holds for that credential.
    const stopClosingRevoked = accounts.onRevoked((credentialId) => hub.closeOpenedBy(credentialId))
    undo.push(stopClosingRevoked)
    const aiFeed = new AiResultFeed(nc, ai, hub, options.log)
    // Search: this process's own projection of the AI results, in memory unless given a file.
    const search = await SearchProjection.start(
      nc,
      ai,
      SearchIndex.open(options.searchDbPath ?? ":memory:"),
      options.log,
    )
    undo.push(async () => {
      await search.stop()
      search.index.close()
    })
    undo.push(() => aiFeed.stop())
    await aiFeed.start()
    const bounded = boundedWebSocketClass(options.webSocket)
    const purgeExpired = () =>
      void accounts.purgeExpired().catch((error: unknown) => {
        options.log(
          `accounts: purging expired tokens: ${error instanceof Error ? error.message : String(error)}`,
        )
      })
    purgeExpired()
    const purgeTimer = setInterval(purgeExpired, options.expiryPurgeIntervalMs ?? 60_000)
    purgeTimer.unref()
    undo.push(() => clearInterval(purgeTimer))

    // Listening before the services exist (their RTMP URL names the port): a publish this early waits.
    let rtmpSessions: PushSessions | undefined
    const rtmpKeys = new StreamKeys(deploymentKey, "rtmp")
    const rtmpOptions = options.rtmp
    const rtmpIngest =
      rtmpOptions === undefined
        ? undefined
        : await RtmpIngest.listen({
            host: rtmpOptions.host,
            port: rtmpOptions.port,
            ffmpegPath: resolveFfmpeg(),
            ...(rtmpOptions.segmentSeconds === undefined
              ? {}
              : { segmentSeconds: rtmpOptions.segmentSeconds }),
            admit: rtmpAdmission(() => rtmpSessions, rtmpKeys, RTMP_APP),
            log: options.log,
          })
    if (rtmpIngest !== undefined) undo.push(() => rtmpIngest.close())
    const rtmpGraceMs = rtmpOptions?.graceMs ?? 10_000
    let whipSessions: PushSessions | undefined
    const whipOptions = options.whip
    const whipIngest =
      whipOptions === undefined
        ? undefined
        : new WhipIngest({
            ffmpegPath: resolveFfmpeg(),
            iceAddresses: whipOptions.iceAddresses,
            icePortRange: whipOptions.icePortRange,
            segmentSeconds: whipOptions.segmentSeconds,
            mediaTimeoutMs: whipOptions.mediaTimeoutMs,
            log: options.log,
          })
    if (whipIngest !== undefined) undo.push(() => whipIngest.close())

    const services: GatewayServicesShape = {
      runtime,
      accounts,
      media,
      ai,
      detectionEvents: await DetectionEvents.open(nc, topology),
      search,
      transcription: options.transcription ?? { offered: ["local"], default: "local" },
      chatModels: options.chatModels ?? NO_CHAT_MODELS,
      exports,
      signer,
      connectionIds: new ConnectionIds(deploymentKey),
      quota,
      uploadSlots: new UploadSlots(limits.maxUploadsPerCredential),
      rtmp:
        rtmpOptions === undefined || rtmpIngest === undefined
          ? undefined
          : {
              publicUrl: (
                rtmpOptions.publicUrl ?? `rtmp://${rtmpOptions.host}:${rtmpIngest.port}/${RTMP_APP}`
              ).replace(/\/+$/, ""),
              keys: rtmpKeys,
              graceMs: rtmpGraceMs,
            },
      whip:
        whipIngest === undefined
          ? undefined
          : {
              keys: new StreamKeys(deploymentKey, "whip"),
              ingest: whipIngest,
              admit: async (sessionId, end) =>
                whipSessions === undefined
                  ? { refused: captureError("unavailable", "the server is starting") }
                  : whipSessions.admit(sessionId, "whip", end),
              log: options.log,
            },
      config: {
        ...limits,
        publicUrl: options.publicUrl.replace(/\/+$/, ""),
        defaultTokenSeconds: options.defaultTokenSeconds,
        sessionStateMaxAgeMs: options.sessionStateMaxAgeMs,
      },
      checkCallbackUrl: (url, field) => checkCallbackUrl(url, policy, field),
      webhookDeliveries: async (sessionId: SessionId) => {
        const [deliveries, alert_deliveries] = await Promise.all([
          deliveryLog.list(sessionId),
          alertDeliveryLog.list(sessionId, await alertsOfSession(runtime, ai, sessionId)),
        ])
        return { deliveries, alert_deliveries }
      },
    }
    // One lease bucket for every pushed source: a session has one publisher, whatever it pushes over.
    const leaseTtlMs = rtmpOptions?.leaseTtlMs ?? whipOptions?.leaseTtlMs ?? 15_000
    const leases =
      rtmpIngest === undefined && whipOptions === undefined
        ? undefined
        : await PublishLeases.open(nc, { ...topology, ttlMs: leaseTtlMs, log: options.log })
    const pushSessions = (graceMs: number) => {
      if (leases === undefined) throw new Error("no publish leases")
      return new PushSessions(services, leases, {
        graceMs,
        renewMs: Math.max(100, Math.floor(leaseTtlMs / 5)),
        log: options.log,
      })
    }
    if (rtmpIngest !== undefined) {
      rtmpSessions = pushSessions(rtmpGraceMs)
      options.log(
        `rtmp listening on ${rtmpOptions?.host}:${rtmpIngest.port} (${services.rtmp?.publicUrl}/<stream key>)`,
      )
    }
    if (whipOptions !== undefined) {
      whipSessions = pushSessions(whipOptions.graceMs ?? 10_000)
      options.log(
        `whip publishes at ${services.config.publicUrl}/whip/<session id> (ICE on ${whipOptions.iceAddresses.join(", ")})`,
      )
    }
    // Publishers first: their last segments are stored while NATS is still there (closing twice is harmless).
    undo.push(async () => {
      await rtmpIngest?.close()
      await whipIngest?.close()
      await rtmpSessions?.stop()
      await whipSessions?.stop()
    })
    return {
      accounts,
      hub,
      exports,
      services,
      rateLimiter,
      webSocketServerOptions: {
        WebSocket: bounded.WebSocket,
        // `ws` buffers a message whole before it is read: its size is the bound on that buffer.
        maxPayload: options.webSocket.maxMessageBytes ?? DEFAULT_WS_MAX_MESSAGE_BYTES,
      },
      webSocketStats: bounded.stats,
      firstApiKey,
      rtmpPort: rtmpIngest?.port,
      log: options.log,
      // Every part goes on stopping when one fails.
      stop: () =>
        undoAll((error) =>
          options.log(
            `gateway: stopping a part failed: ${error instanceof Error ? error.message : String(error)}`,
          ),
        ),
    }
  } catch (error) {
    await undoAll(() => undefined)
    throw error
  }
}

/**
 * The alerts on a session's rtstreams, as their AI histories hold them: what the deliveries
 * recorded before keys named the session (`legacyAlertDeliveryKey`) are found and completed by.
 */
const alertsOfSession = async (
  runtime: SessionRuntime,
  ai: AiStore,
  sessionId: SessionId,
): Promise<ReadonlyArray<AlertOwner>> => {
  const session = toCaptureSession((await runtime.host.load(sessionId)).state)
  const states = await Promise.all((session?.rtstreams ?? []).map((r) => ai.load(r.rtstream_id)))
  return states.flatMap((state) =>
    state.alerts.map((alert) => ({
      alert_id: alert.alertId,
      event_id: alert.eventId,
      session_id: sessionId,
      rtstream_id: state.rtstreamId as RtstreamId,
      index_id: alert.indexId,
    })),
  )
}

/** Every HTTP route of the gateway, with the envelope and JSON-body middleware around them. */
export const gatewayRoutes = (gateway: Gateway) => {
  const services = Layer.succeed(GatewayServices, gateway.services)
  const api = HttpApiBuilder.layer(CaptureApi, { openapiPath: "/openapi.json" }).pipe(
    Layer.provide(Layer.mergeAll(HandlersLive, RtstreamHandlersLive)),
    Layer.provide(Layer.mergeAll(AuthenticationLive, RequestDecodingLive)),
    Layer.provide(services),
  )
  return Layer.mergeAll(
    api,
    HttpApiScalar.layer(CaptureApi, { path: "/docs" }),
    webSocketRoute(gateway.accounts, gateway.hub, gateway.services.connectionIds),
    ingestRoute(gateway.services, gateway.services.media, gateway.services.config.maxSegmentBytes),
    liveRoutes(gateway.services, gateway.services.media, gateway.services.signer),
    whipRoutes(gateway.services),
    clipRoutes(gateway.services, gateway.services.media, gateway.services.signer, gateway.log),
    ...exportRoutes(gateway.services, gateway.exports),
    consoleRoutes,
    responseEnvelope(gateway.log),
    jsonBodyLimits(gateway.services.config),
    rateLimits(gateway.rateLimiter),
  )
}
