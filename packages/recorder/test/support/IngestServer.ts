/**
 * An in-memory ingest server on 127.0.0.1 implementing the recorder's side of the API:
 * `POST /capture/session/start`, `PUT …/channels/{channel_id}/segments/{index}`,
 * `POST /capture/session/{id}/pause` and `/resume`, `POST /capture/session/{id}/stop`,
 * `POST /capture/session/{id}/fail`. Tests can make it refuse segment uploads or pauses for a
 * while, end a session, and count requests per segment key. (The real gateway's handling of
 * pauses is tested in apps/cli.)
 */
import { createHash } from "node:crypto"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { isFinalSegment, SEGMENT_CONTENT_TYPE, type SegmentAck, SegmentHeaders } from "@capture/protocol"

export interface StoredSegment {
  readonly sessionId: string
  readonly channelId: string
  readonly index: number
  readonly bytes: Buffer
  readonly sha256: string
  readonly startMs: number
  readonly durationMs: number
  readonly final: boolean
  readonly receivedAt: number
}

export interface ServerSession {
  status: "active" | "stopped" | "exported" | "failed"
  readonly startBody: unknown
  starts: number
  stops: number
  /** `POST …/fail` calls, and the body of the one that failed the session. */
  fails: number
  failure?: unknown
  /** When the stop was received. */
  stoppedAt?: number
  /** Pauses and resumes accepted, in the order received. */
  readonly pauses: Array<ReceivedPause>
}

/** A pause or resume as the server accepted it. */
export interface ReceivedPause {
  readonly action: "pause" | "resume"
  readonly channelIds: ReadonlyArray<string>
  readonly atMs: number
  readonly receivedAt: number
}

export interface IngestServer {
  readonly url: string
  readonly sessions: Map<string, ServerSession>
  /** PUTs received per `session/channel/index`, whatever the answer. */
  readonly putCounts: Map<string, number>
  /** 200 answers given per `session/channel/index`. */
  readonly okCounts: Map<string, number>
  /** PUTs of a session answered with an error status because of `refuseFor`. */
  refused(sessionId: string): number
  /** The stored segments of a session (of one channel), by channel then index. */
  segments(sessionId: string, channelId?: string): ReadonlyArray<StoredSegment>
  /** The channel ids a session has segments for. */
  channels(sessionId: string): ReadonlyArray<string>
  /** Answers every segment PUT of `sessionId` with `status` for the next `ms`. */
  refuseFor(sessionId: string, status: number, ms: number): void
  /** Answers every pause and resume of `sessionId` with `status` for the next `ms` (0: stop refusing). */
  refusePausesFor(sessionId: string, status: number, ms: number): void
  /** Pauses and resumes of a session answered with an error status because of `refusePausesFor`. */
  refusedPauses(sessionId: string): number
  /** Ends a session as an operator would: later requests get 409 with `current_status`. */
  endSession(sessionId: string, status: "stopped" | "exported" | "failed"): void
  /** Stops listening (connections refused, as with a server that is down), keeping its state. */
  goOffline(): Promise<void>
  /** Listens again on the same port. */
  goOnline(): Promise<void>
  close(): Promise<void>
}

const send = (response: ServerResponse, status: number, body: unknown) => {
  response.writeHead(status, { "content-type": "application/json" })
  response.end(JSON.stringify(body))
}

const fail = (
  response: ServerResponse,
  status: number,
  error_code: string,
  message: string,
  extra: Record<string, unknown> = {},
) => send(response, status, { success: false, message, error_code, ...extra })

const readBody = async (request: IncomingMessage): Promise<Buffer> => {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

const SEGMENT_PATH = /^\/capture\/session\/([^/]+)\/channels\/([^/]+)\/segments\/([^/]+)$/
const STOP_PATH = /^\/capture\/session\/([^/]+)\/stop$/
const FAIL_PATH = /^\/capture\/session\/([^/]+)\/fail$/
const PAUSE_PATH = /^\/capture\/session\/([^/]+)\/(pause|resume)$/

export const startIngestServer = async (): Promise<IngestServer> => {
  const sessions = new Map<string, ServerSession>()
  const stored = new Map<string, StoredSegment>()
  const putCounts = new Map<string, number>()
  const okCounts = new Map<string, number>()
  const refusals = new Map<string, { status: number; until: number; count: number }>()
  const pauseRefusals = new Map<string, { status: number; until: number; count: number }>()

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const body = await readBody(request)
    const url = new URL(request.url ?? "/", "http://127.0.0.1")
    const token = request.headers[SegmentHeaders.token]
    if (typeof token !== "string" || !token.startsWith("st-")) {
      return fail(response, 401, "unauthorized", "a client token (st-…) is required")
    }

    if (request.method === "POST" && url.pathname === "/capture/session/start") {
      let json: { session_id?: unknown }
      try {
        json = JSON.parse(body.toString("utf8")) as { session_id?: unknown }
      } catch {
        return fail(response, 400, "invalid_json", "body is not JSON")
      }
      if (typeof json.session_id !== "string")
        return fail(response, 400, "missing_field", "session_id", { field: "session_id" })
      const existing = sessions.get(json.session_id)
      if (existing !== undefined) {
        existing.starts += 1
        return fail(response, 409, "invalid_transition", `session is ${existing.status}`, {
          current_status: existing.status,
        })
      }
      sessions.set(json.session_id, {
        status: "active",
        startBody: json,
        starts: 1,
        stops: 0,
        fails: 0,
        pauses: [],
      })
      return send(response, 200, { success: true, data: { session_id: json.session_id, status: "starting" } })
    }

    const stop = STOP_PATH.exec(url.pathname)
    if (request.method === "POST" && stop !== null) {
      const session = sessions.get(decodeURIComponent(stop[1] ?? ""))
      if (session === undefined) return fail(response, 404, "session_not_found", "no such session")
      session.stops += 1
      if (session.status !== "active") {
        return fail(response, 409, "invalid_transition", `session is ${session.status}`, {
          current_status: session.status,
        })
      }
      session.status = "stopped"
      session.stoppedAt = Date.now()
      return send(response, 200, { success: true, data: { session_id: stop[1], status: "stopped" } })
    }

    const failed = FAIL_PATH.exec(url.pathname)
    if (request.method === "POST" && failed !== null) {
      const session = sessions.get(decodeURIComponent(failed[1] ?? ""))
      if (session === undefined) return fail(response, 404, "session_not_found", "no such session")
      session.fails += 1
      if (session.status === "stopped" || session.status === "exported") {
        return fail(response, 409, "session_ended", `session is ${session.status}`, {
          current_status: session.status,
        })
      }
      if (session.status === "active") {
        session.status = "failed"
        session.failure = JSON.parse(body.toString("utf8"))
      }
      return send(response, 200, { success: true, data: { session_id: failed[1], status: "failed" } })
    }

    const pause = PAUSE_PATH.exec(url.pathname)
    if (request.method === "POST" && pause !== null) {
      const sessionId = decodeURIComponent(pause[1] ?? "")
      const refusal = pauseRefusals.get(sessionId)
      if (refusal !== undefined && Date.now() < refusal.until) {
        refusal.count += 1
        return fail(response, refusal.status, "unavailable", "refused by the test")
      }
      const session = sessions.get(sessionId)
      if (session === undefined) return fail(response, 404, "session_not_found", "no such session")
      if (session.status !== "active") {
        return fail(response, 409, "invalid_transition", `session is ${session.status}`, {
          current_status: session.status,
        })
      }
      const json = JSON.parse(body.toString("utf8")) as { channel_ids?: string[]; at_ms?: number }
      if (!Array.isArray(json.channel_ids) || !Number.isInteger(json.at_ms))
        return fail(response, 400, "invalid_field", "channel_ids and at_ms are expected")
      session.pauses.push({
        action: pause[2] === "pause" ? "pause" : "resume",
        channelIds: json.channel_ids,
        atMs: json.at_ms as number,
        receivedAt: Date.now(),
      })
      return send(response, 200, { success: true, data: { session_id: sessionId, status: "active" } })
    }

    const segment = SEGMENT_PATH.exec(url.pathname)
    if (request.method === "PUT" && segment !== null) {
      const sessionId = decodeURIComponent(segment[1] ?? "")
      const channelId = decodeURIComponent(segment[2] ?? "")
      const indexText = segment[3] ?? ""
      const key = `${sessionId}/${channelId}/${indexText}`
      putCounts.set(key, (putCounts.get(key) ?? 0) + 1)
      const refusal = refusals.get(sessionId)
      if (refusal !== undefined && Date.now() < refusal.until) {
        refusal.count += 1
        return fail(response, refusal.status, "unavailable", "refused by the test")
      }
      const session = sessions.get(sessionId)
      if (session === undefined) return fail(response, 404, "session_not_found", "no such session")
      if (session.status !== "active") {
        return fail(response, 409, "invalid_transition", `session is ${session.status}`, {
          current_status: session.status,
        })
      }
      if (!/^\d+$/.test(indexText)) return fail(response, 400, "invalid_field", "index", { field: "index" })
      if (request.headers["content-type"] !== SEGMENT_CONTENT_TYPE) {
        return fail(response, 422, "unsupported_media", `expected ${SEGMENT_CONTENT_TYPE}`)
      }
      const startMs = Number(request.headers[SegmentHeaders.startMs])
      const durationMs = Number(request.headers[SegmentHeaders.durationMs])
      if (!Number.isInteger(startMs)) return fail(response, 400, "invalid_field", SegmentHeaders.startMs)
      if (!Number.isInteger(durationMs) || durationMs < 0) {
        return fail(response, 400, "invalid_field", SegmentHeaders.durationMs)
      }
      const sha256 = createHash("sha256").update(body).digest("hex")
      if (request.headers[SegmentHeaders.sha256] !== sha256) {
        return fail(response, 400, "invalid_field", "checksum mismatch", { field: SegmentHeaders.sha256 })
      }
      const index = Number(indexText)
      const existing = stored.get(key)
      if (existing !== undefined && existing.sha256 !== sha256) {
        return fail(response, 409, "segment_conflict", "a different segment is stored at this index")
      }
      if (existing === undefined) {
        stored.set(key, {
          sessionId,
          channelId,
          index,
          bytes: body,
          sha256,
          startMs,
          durationMs,
          final: isFinalSegment(request.headers[SegmentHeaders.final] as string | undefined),
          receivedAt: Date.now(),
        })
      }
      okCounts.set(key, (okCounts.get(key) ?? 0) + 1)
      const ack = {
        session_id: sessionId,
        channel_id: channelId,
        index,
        duplicate: existing !== undefined,
      } as SegmentAck
      return send(response, 200, { success: true, data: ack })
    }
    return fail(response, 404, "not_found", `${request.method} ${url.pathname}`)
  }

  const httpServer = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => fail(response, 500, "internal_error", String(error)))
  })
  await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", resolve))
  const { port } = httpServer.address() as AddressInfo

  const server: IngestServer = {
    url: `http://127.0.0.1:${port}`,
    sessions,
    putCounts,
    okCounts,
    refused: (sessionId) => refusals.get(sessionId)?.count ?? 0,
    segments: (sessionId, channelId) =>
      [...stored.values()]
        .filter(
          (entry) =>
            entry.sessionId === sessionId && (channelId === undefined || entry.channelId === channelId),
        )
        .sort((a, b) => a.channelId.localeCompare(b.channelId) || a.index - b.index),
    channels: (sessionId) =>
      [
        ...new Set(
          [...stored.values()]
            .filter((entry) => entry.sessionId === sessionId)
            .map((entry) => entry.channelId),
        ),
      ].sort(),
    refuseFor: (sessionId, status, ms) => {
      const count = refusals.get(sessionId)?.count ?? 0
      refusals.set(sessionId, { status, until: Date.now() + ms, count })
    },
    refusePausesFor: (sessionId, status, ms) => {
      const count = pauseRefusals.get(sessionId)?.count ?? 0
      pauseRefusals.set(sessionId, { status, until: Date.now() + ms, count })
    },
    refusedPauses: (sessionId) => pauseRefusals.get(sessionId)?.count ?? 0,
    endSession: (sessionId, status) => {
      const session = sessions.get(sessionId)
      if (session !== undefined) session.status = status
    },
    goOffline: () =>
      new Promise<void>((resolve) => {
        httpServer.closeAllConnections()
        httpServer.close(() => resolve())
      }),
    goOnline: () => new Promise<void>((resolve) => httpServer.listen(port, "127.0.0.1", resolve)),
    close: () =>
      new Promise<void>((resolve) => {
        if (!httpServer.listening) return resolve()
        httpServer.closeAllConnections()
        httpServer.close(() => resolve())
      }),
  }
  return server
}
