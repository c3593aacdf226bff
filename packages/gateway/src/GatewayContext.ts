/**
 * What the gateway's routes need, provided once per process: the session runtime (commands and
 * reads), the account store, where URLs the server hands out start, and the policies.
 */

import type { AiStore, ChatModelChoice, EngineChoice, SearchProjection } from "@capture/ai"
import type { ExportStore, MediaStore } from "@capture/media"
import type { CaptureError, SessionId, WebhookDeliveryList } from "@capture/protocol"
import type { SessionRuntime } from "@capture/session-actor"
import { Context, type Result } from "effect"
import type { UrlSigner } from "./access/SignedUrls.js"
import type { AccountStore } from "./accounts/AccountStore.js"
import type { DetectionEvents } from "./alerts/DetectionEvents.js"
import type { PushAdmission } from "./ingest/SegmentCutter.js"
import type { StorageQuota } from "./ingest/StorageQuota.js"
import type { StreamKeys } from "./ingest/StreamKeys.js"
import type { UploadSlots } from "./ingest/UploadSlots.js"
import type { WhipIngest } from "./ingest/WhipIngest.js"
import type { GatewayLimits } from "./Limits.js"
import type { ConnectionIds } from "./websocket/ConnectionIds.js"

export interface GatewayConfig extends GatewayLimits {
  /** Where URLs handed to clients start (`CAPTURE_PUBLIC_URL`), without a trailing slash. */
  readonly publicUrl: string
  /** Lifetime of a client token when the request names none (seconds). */
  readonly defaultTokenSeconds: number
  /** How old a session's state may be when ingest takes a segment on it (ms; default `SESSION_STATE_MAX_AGE_MS`). */
  readonly sessionStateMaxAgeMs?: number | undefined
}

/** Where RTMP publishers push, when this gateway listens for them. */
export interface RtmpEndpoint {
  /** `rtmp://host:port/<app>`: a publish URL is this plus `/<stream key>`. */
  readonly publicUrl: string
  readonly keys: StreamKeys
  /** How long a session waits for its publisher to come back before it stops. */
  readonly graceMs: number
}

/** WHIP publishes (`source: "whip"`), when this gateway takes them. */
export interface WhipEndpoint {
  /** Bearer tokens: one per session. */
  readonly keys: StreamKeys
  readonly ingest: WhipIngest
  /** The session's publisher (the token checked), or why not. */
  readonly admit: (sessionId: string, end: () => void) => Promise<PushAdmission>
  readonly log: (message: string) => void
}

export interface GatewayServicesShape {
  readonly runtime: SessionRuntime
  readonly accounts: AccountStore
  readonly media: MediaStore
  /** AI results and transcription control (`@capture/ai`). */
  readonly ai: AiStore
  /** The accounts' detection events (alerts copy theirs when attached). */
  readonly detectionEvents: DetectionEvents
  /** This process's search projection of the AI results (SQLite FTS5). */
  readonly search: SearchProjection
  /** The transcription engines this server offers, and its default. */
  readonly transcription: EngineChoice
  /** The chat models an index's `model_name` may name, and the default (null: none configured). */
  readonly chatModels: ChatModelChoice
  /** Exported videos and raw assets (what the muxer wrote), read-only here. */
  readonly exports: ExportStore
  readonly signer: UrlSigner
  /** Mints and checks WebSocket connection ids (whose socket a session may name). */
  readonly connectionIds: ConnectionIds
  readonly config: GatewayConfig
  /** Media bytes stored per session and account, against their quotas. */
  readonly quota: StorageQuota
  /** Segment uploads in flight per credential on this process. */
  readonly uploadSlots: UploadSlots
  /** RTMP ingest (`source: "rtmp"`); undefined when this gateway does not listen for it. */
  readonly rtmp: RtmpEndpoint | undefined
  /** WHIP ingest (`source: "whip"`); undefined when this gateway does not take it. */
  readonly whip: WhipEndpoint | undefined
  /** Refuses a callback URL that is not http(s) or points at a private address (unless allowed). */
  readonly checkCallbackUrl: (url: string, field: string) => Promise<Result.Result<URL, CaptureError>>
  /** A session's webhook deliveries: lifecycle ones oldest first, and its alerts'. */
  readonly webhookDeliveries: (sessionId: SessionId) => Promise<WebhookDeliveryList>
}

export class GatewayServices extends Context.Service<GatewayServices, GatewayServicesShape>()(
  "capture/GatewayServices",
) {}

/** `ws://` or `wss://` for a public http(s) URL. */
export const toWebSocketUrl = (publicUrl: string): string => publicUrl.replace(/^http/, "ws")
