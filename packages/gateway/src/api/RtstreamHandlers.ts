/**
 * The rtstream routes' handlers. A single rtstream is read from its session's actor (a stop just
 * made shows at once); lists walk the read model. API keys reach every rtstream of their account,
 * client tokens those of their own end user (all of the account's when issued without one); only
 * an API key exports.
 */
import { stopRtstreamAi } from "@capture/ai"
import {
  type CaptureSession,
  captureError,
  newCommandId,
  pathOf,
  playerUrl,
  RTSTREAM_EXPORT_ROUTE,
  type RtstreamExportView,
  type RtstreamResource,
  rtstreamResourceOf,
  type StreamRangeQuery,
  type StreamRangeView,
  successOf,
} from "@capture/protocol"
import { toCaptureSession } from "@capture/session-actor"
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import {
  authorizeRtstream,
  mayReach,
  type ReachableRtstream,
  rtstreamNotFound,
} from "../access/RtstreamAccess.js"
import { sessionNotFound } from "../access/SessionAccess.js"
import type { Principal } from "../accounts/AccountStore.js"
import { rawAssetFileUrl } from "../exports/ExportRoutes.js"
import { GatewayServices, type GatewayServicesShape } from "../GatewayContext.js"
import { clipUrls } from "../ingest/ClipRoutes.js"
import { CaptureApi, CurrentPrincipal } from "./CaptureApi.js"
import type { Failure } from "./Failures.js"
import { aiCommand, call, execute, fromResult, refuse, requireApiKey, requireCollection } from "./Handlers.js"
import { findRtstream } from "./TranscriptionHandlers.js"

/** The rtstream `id` with its session, if the principal may reach it (else 404 `rtstream_not_found`). */
export const reachRtstream = (services: GatewayServicesShape, principal: Principal, id: string) =>
  Effect.flatMap(
    call("loading the rtstream", () => authorizeRtstream(services.runtime, principal, id)),
    fromResult,
  )

/** A session still capturing: its rtstreams may be live and its segments still arriving. */
const recording = (session: CaptureSession) =>
  session.status === "starting" || session.status === "active" || session.status === "stopping"

const iso = (ms: number) => new Date(ms).toISOString()

/**
 * `generateStream`: the asked range clamped to what the rtstream's channel recorded (while it
 * still records, the end may lie ahead), as signed clip URLs.
 */
const streamRange = (
  services: GatewayServicesShape,
  { session, rtstream }: ReachableRtstream,
  query: StreamRangeQuery,
): Effect.Effect<StreamRangeView, Failure> =>
  Effect.gen(function* () {
    const askedFrom = Math.round(query.start * 1000)
    const askedTo = Math.round(query.end * 1000)
    if (askedTo <= askedFrom) {
      return yield* refuse(
        captureError("invalid_time_range", "end must be after start (both in Unix seconds)", {
          field: "end",
        }),
      )
    }
    const notRecorded = (message: string, field: string) =>
      refuse(captureError("time_range_not_recorded", message, { field }))
    const live = recording(session)
    const stored = session.channels.find((c) => c.channel_id === rtstream.name)?.store ?? false
    if (!live && !stored) {
      return yield* notRecorded(
        `${rtstream.name} has store: false: its media is not kept once the session ends`,
        "rtstream_id",
      )
    }
    const records = (yield* call("listing media", () => services.media.list(session.id))).filter(
      (r) => r.channel_id === rtstream.name,
    )
    if (records.length === 0) return yield* notRecorded("nothing of this rtstream is recorded yet", "start")
    const first = Math.min(...records.map((r) => r.start_ms))
    const last = Math.max(...records.map((r) => r.start_ms + r.duration_ms))
    const ended = !live || records.some((r) => r.final)
    if (askedTo <= first) {
      return yield* notRecorded(`the range ends before the recording begins (${iso(first)})`, "end")
    }
    if (askedFrom >= last) {
      return yield* notRecorded(
        `the range starts after ${ended ? "the recording ends" : "what is recorded so far"} (${iso(last)})`,
        "start",
      )
    }
    const fromMs = Math.max(askedFrom, first)
    const toMs = ended ? Math.min(askedTo, last) : askedTo
    const urls = clipUrls(services.config.publicUrl, services.signer, {
      sessionId: session.id,
      channelId: rtstream.name,
      fromMs,
      toMs,
    })
    const format = query.format ?? "hls"
    return {
      rtstream_id: rtstream.rtstream_id,
      format,
      stream_url: format === "mp4" ? urls.mp4 : urls.hls,
      player_url: urls.player,
      start: fromMs / 1000,
      end: toMs / 1000,
      duration: (toMs - fromMs) / 1000,
    }
  })

/** The exported rtstream: its channel's raw asset, once an export of its session made it. */
const exportedView = (
  services: GatewayServicesShape,
  { session, rtstream }: ReachableRtstream,
  assetId: string,
  name: string,
) =>
  Effect.gen(function* () {
    const raw = yield* call("reading the exported asset", () => services.exports.asset(assetId))
    if (raw === undefined) {
      return yield* refuse(
        captureError("unavailable", `asset ${assetId} of ${rtstream.rtstream_id} is not readable`),
      )
    }
    const file = rawAssetFileUrl(services.config.publicUrl, raw)
    const view: RtstreamExportView = {
      video_id: raw.asset.asset_id,
      rtstream_id: rtstream.rtstream_id,
      session_id: session.id,
      name,
      duration: raw.asset.duration_ms / 1000,
      stream_url: file,
      player_url: playerUrl(services.config.publicUrl, raw.asset.asset_id),
      download_url: file,
    }
    return successOf(view)
  })

/**
 * Exports an rtstream (`POST`, `start` true) or reports its export (`GET`): its channel's raw asset,
 * which every export of a stopped session makes. An rtstream is exported once its session stops
 * recording (VideoDB: "the stream must be stopped before exporting"); while the session finishes
 * stopping and its export runs, the answer is `processing`, with the URL to poll.
 */
const exportRtstream = (
  services: GatewayServicesShape,
  id: string,
  options: { readonly start: boolean; readonly name?: string | null | undefined },
) =>
  Effect.gen(function* () {
    const principal = yield* CurrentPrincipal
    // Reached first: another end user's rtstream is not found, whoever asks.
    const reachable = yield* reachRtstream(services, principal, id)
    yield* requireApiKey(principal)
    const { loaded, session, rtstream } = reachable
    const name = options.name ?? `${rtstream.name} - Recording`
    const stored = session.channels.find((c) => c.channel_id === rtstream.name)?.store ?? false
    if (!stored) {
      return yield* refuse(
        captureError("export_channel_not_stored", `${rtstream.name} has store: false and is never exported`, {
          field: "rtstream_id",
        }),
      )
    }
    if (rtstream.exported_asset_id !== null) {
      return yield* exportedView(services, reachable, rtstream.exported_asset_id, name)
    }
    const processing = {
      success: true as const,
      status: "processing" as const,
      // The name rides along: the poll answers with it (names are not stored).
      data: {
        output_url: `${services.config.publicUrl}${pathOf(RTSTREAM_EXPORT_ROUTE, { rtstream_id: rtstream.rtstream_id })}${
          options.name === undefined || options.name === null
            ? ""
            : `?name=${encodeURIComponent(options.name)}`
        }`,
      },
    }
    // A stopping session is finishing its streams; the export its stop makes follows.
    if (session.status === "stopping") return processing
    if (session.status !== "stopped" && session.status !== "exported") {
      const why =
        session.status === "failed" ? "its session failed" : "its session is still recording; stop it first"
      return yield* refuse(
        captureError("invalid_transition", `cannot export ${rtstream.rtstream_id}: ${why}`, {
          current_status: session.status,
        }),
      )
    }
    const exports = loaded.state.context.exports
    if (!exports.some((e) => e.export_status === "exporting")) {
      if (exports.some((e) => e.export_status === "exported")) {
        return yield* refuse(
          captureError("no_media", `nothing usable of ${rtstream.name} was recorded: it has no raw asset`),
        )
      }
      if (!options.start) {
        return yield* refuse(
          captureError(
            "invalid_transition",
            `no export of ${rtstream.rtstream_id} is running; POST to start one`,
            {
              current_status: session.status,
            },
          ),
        )
      }
      yield* execute(services, { type: "RequestExport", command_id: newCommandId(), session_id: session.id })
    }
    return processing
  })

const byOrdering = (ordering: string) => {
  const descending = ordering.startsWith("-")
  const key = ordering.replace(/^-/, "") as "created_at" | "name"
  return (a: RtstreamResource, b: RtstreamResource): number => {
    const order =
      a[key] < b[key]
        ? -1
        : a[key] > b[key]
          ? 1
          : a.rtstream_id < b.rtstream_id
            ? -1
            : a.rtstream_id > b.rtstream_id
              ? 1
              : 0
    return descending ? -order : order
  }
}

export const RtstreamsLive = HttpApiBuilder.group(CaptureApi, "rtstreams", (handlers) =>
  Effect.gen(function* () {
    const services = yield* GatewayServices
    return handlers
      .handle("listRtstreams", ({ query }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          let sessions: ReadonlyArray<CaptureSession>
          if (query.session_id !== undefined) {
            const sessionId = query.session_id
            // One session: from its actor, so rtstreams just made or stopped show at once.
            const loaded = yield* call("loading the session", () => services.runtime.host.load(sessionId))
            const view = toCaptureSession(loaded.state)
            if (
              view === null ||
              !mayReach(principal, loaded.state.context) ||
              (query.collection_id !== undefined && view.collection_id !== query.collection_id)
            ) {
              return yield* refuse(sessionNotFound(sessionId))
            }
            sessions = [view]
          } else {
            if (query.collection_id !== undefined) {
              yield* requireCollection(services, principal, query.collection_id)
            }
            const scope = {
              account_id: principal.account_id,
              ...(query.collection_id === undefined ? {} : { collection_id: query.collection_id }),
              ...(principal.kind === "client_token" && principal.end_user_id !== null
                ? { end_user_id: principal.end_user_id }
                : {}),
            }
            sessions = yield* call("listing rtstreams", async () => {
              const found: Array<CaptureSession> = []
              for await (const record of services.runtime.readModel.scan(scope)) {
                if (record.session.rtstreams.length > 0) found.push(record.session)
              }
              return found
            })
          }
          const matching = sessions
            .flatMap((session) => session.rtstreams.map((r) => rtstreamResourceOf(session, r)))
            .filter(
              (r) =>
                (query.status === undefined || r.status === query.status) &&
                (query.name === undefined || r.name === query.name || r.channel_id === query.name),
            )
            .sort(byOrdering(query.ordering ?? "-created_at"))
          const limit = query.limit ?? 10
          const offset = query.offset ?? 0
          return successOf({
            results: matching.slice(offset, offset + limit),
            count: matching.length,
            limit,
            offset,
            next_offset: offset + limit < matching.length ? offset + limit : null,
          })
        }),
      )
      .handle("getRtstream", ({ params }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const { session, rtstream } = yield* reachRtstream(services, principal, params.rtstream_id)
          return successOf(rtstreamResourceOf(session, rtstream))
        }),
      )
      .handle("setRtstreamStatus", ({ params, payload }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const { session, rtstream } = yield* reachRtstream(services, principal, params.rtstream_id)
          const outcome = yield* execute(services, {
            type: payload.action === "stop" ? "StopRtstream" : "StartRtstream",
            command_id: newCommandId(),
            session_id: session.id,
            rtstream_id: rtstream.rtstream_id,
          })
          const after = toCaptureSession(outcome.state)
          const changed = after?.rtstreams.find((r) => r.rtstream_id === rtstream.rtstream_id)
          if (after === null || changed === undefined)
            return yield* refuse(rtstreamNotFound(params.rtstream_id))
          if (payload.action === "stop") {
            // Stored after the rtstream's stop: a retry of a half-done stop finishes it.
            const target = yield* findRtstream(services, principal, rtstream.rtstream_id)
            yield* aiCommand(
              "stopRtstream",
              "stopping the rtstream's transcription and indexes",
              target,
              (span) => stopRtstreamAi(services.ai, target, services.transcription, span),
            )
          }
          return successOf(rtstreamResourceOf(after, changed))
        }),
      )
      .handle("generateStream", ({ params, query }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const reachable = yield* reachRtstream(services, principal, params.rtstream_id)
          return successOf(yield* streamRange(services, reachable, query))
        }),
      )
      .handle("exportRtstream", ({ params, payload }) =>
        exportRtstream(services, params.rtstream_id, { start: true, name: payload.name }),
      )
      .handle("rtstreamExport", ({ params, query }) =>
        exportRtstream(services, params.rtstream_id, { start: false, name: query.name }),
      )
  }),
)

/** The rtstream group's handlers. */
export const RtstreamHandlersLive = RtstreamsLive
