/**
 * The recorder's side of the ingest API: start a session, PUT a segment, pause and resume
 * channels, stop or fail the session. Every call carries the client token in `x-access-token`.
 * Failures are values (`NetworkError`, `HttpError`) with predicates saying whether to retry and
 * whether the server ended the session.
 *
 * `PUT {baseUrl}/capture/session/{session_id}/channels/{channel_id}/segments/{index}`, body the
 * raw MPEG-TS bytes, headers `content-type: video/mp2t`, `x-segment-start-ms`,
 * `x-segment-duration-ms`, `x-segment-sha256` and, on a channel's last segment, `x-segment-final: 1`.
 * Success: 200 `{success: true, data: {session_id, channel_id, index, duplicate}}`. The names and
 * the path, the start body and the acknowledgement are the protocol's (`segmentPath`,
 * `SegmentHeaders`, `StartSessionRequest`, `SegmentAck`).
 */
import {
  decodeUnknown,
  type FailSessionRequest,
  Failure,
  failSessionPath,
  type PauseRequest,
  pauseChannelsPath,
  resumeChannelsPath,
  SEGMENT_CONTENT_TYPE,
  SEGMENT_FINAL,
  SegmentAck,
  SegmentHeaders,
  type SessionStatus,
  START_SESSION_ROUTE,
  type StartSessionRequest,
  Success,
  segmentPath,
  stopSessionPath,
} from "@capture/protocol"
import { Data, Result } from "effect"
import type { SegmentRecord } from "./Spool.js"

const decodeAck = decodeUnknown(Success(SegmentAck))
const decodeFailure = decodeUnknown(Failure)

/** The request never got an HTTP answer (refused, reset, timed out). */
export class NetworkError extends Data.TaggedError("NetworkError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/** The server answered with an error status (or a body the recorder cannot read). */
export class HttpError extends Data.TaggedError("HttpError")<{
  readonly status: number
  readonly message: string
  readonly errorCode?: string
  readonly field?: string
  /** For 409s: the session's status on the server. */
  readonly currentStatus?: SessionStatus
  /** From `Retry-After`, for 429 and 503. */
  readonly retryAfterMs?: number
}> {}

/** What an ingest call can fail with. */
export type IngestError = NetworkError | HttpError

/** Worth trying again: no answer, 408, 429 or 5xx. Other 4xx will not change by retrying. */
export const isRetryable = (error: IngestError): boolean =>
  error._tag === "NetworkError" || error.status === 408 || error.status === 429 || error.status >= 500

const ENDED: ReadonlyArray<string> = ["stopped", "exported", "failed"]

/** The server ended the session (409 with `current_status` stopped, exported or failed). */
export const isSessionEnded = (error: IngestError): error is HttpError =>
  error._tag === "HttpError" &&
  error.status === 409 &&
  error.currentStatus !== undefined &&
  ENDED.includes(error.currentStatus)

/**
 * The server stopped the session by itself (silence, stop timeout) and takes only media recorded
 * before the stop: this segment, and every later one of its channel, came after it.
 */
export const isRecordedAfterStop = (error: IngestError): boolean =>
  error._tag === "HttpError" && error.status === 409 && error.errorCode === "recorded_after_stop"

/** The session is already running on the server (409 with `current_status` starting or active). */
export const isAlreadyStarted = (error: IngestError): error is HttpError =>
  error._tag === "HttpError" &&
  error.status === 409 &&
  (error.currentStatus === "starting" || error.currentStatus === "active")

/** `Retry-After` as milliseconds (seconds or an HTTP date). */
const retryAfter = (header: string | null): number | undefined => {
  if (header === null) return undefined
  const seconds = Number(header)
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1_000)
  const date = Date.parse(header)
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now())
}

/** Where to send, and as whom. */
export interface IngestClientOptions {
  readonly baseUrl: string
  readonly clientToken: string
  /** Per-request timeout (default 30 s). */
  readonly requestTimeoutMs?: number
}

/** HTTP calls of the recorder. Each resolves with the response's `data` or rejects with an `IngestError`. */
export class IngestClient {
  readonly #baseUrl: string
  readonly #token: string
  readonly #timeoutMs: number

  constructor(options: IngestClientOptions) {
    this.#baseUrl = options.baseUrl.replace(/\/+$/, "")
    this.#token = options.clientToken
    this.#timeoutMs = options.requestTimeoutMs ?? 30_000
  }

  /** `POST /capture/session/start`. */
  startSession(body: typeof StartSessionRequest.Encoded, signal?: AbortSignal): Promise<unknown> {
    return this.#json("POST", START_SESSION_ROUTE, body, signal)
  }

  /** `POST /capture/session/{id}/stop`. */
  stopSession(sessionId: string, signal?: AbortSignal): Promise<unknown> {
    return this.#json("POST", stopSessionPath(sessionId), {}, signal)
  }

  /** `POST /capture/session/{id}/fail`: the recorder cannot capture; the session fails with `body.error`. */
  failSession(sessionId: string, body: FailSessionRequest, signal?: AbortSignal): Promise<unknown> {
    return this.#json("POST", failSessionPath(sessionId), body, signal)
  }

  /** `POST /capture/session/{id}/pause`: the server counts these channels paused from `at_ms`. */
  pauseChannels(sessionId: string, body: PauseRequest, signal?: AbortSignal): Promise<unknown> {
    return this.#json("POST", pauseChannelsPath(sessionId), body, signal)
  }

  /** `POST /capture/session/{id}/resume`: these channels capture again from `at_ms`. */
  resumeChannels(sessionId: string, body: PauseRequest, signal?: AbortSignal): Promise<unknown> {
    return this.#json("POST", resumeChannelsPath(sessionId), body, signal)
  }

  /** `PUT …/channels/{channel_id}/segments/{index}` with the segment's bytes. */
  async putSegment(
    record: SegmentRecord,
    body: Uint8Array,
    final: boolean,
    signal?: AbortSignal,
  ): Promise<SegmentAck> {
    const path = segmentPath(record.session_id, record.channel_id, record.index)
    const response = await this.#send(
      "PUT",
      path,
      {
        "content-type": SEGMENT_CONTENT_TYPE,
        [SegmentHeaders.startMs]: String(record.start_ms),
        [SegmentHeaders.durationMs]: String(record.duration_ms),
        [SegmentHeaders.sha256]: record.sha256,
        ...(final ? { [SegmentHeaders.final]: SEGMENT_FINAL } : {}),
      },
      body,
      signal,
    )
    const json = await readJson(response)
    const ack = decodeAck(json)
    if (Result.isFailure(ack)) {
      throw new HttpError({
        status: response.status,
        message: `unreadable acknowledgement: ${ack.failure.message}`,
      })
    }
    const data = ack.success.data
    if (data.index !== record.index || data.channel_id !== record.channel_id) {
      throw new HttpError({
        status: response.status,
        message: `acknowledgement for ${data.channel_id}#${data.index}, expected ${record.channel_id}#${record.index}`,
      })
    }
    return data
  }

  async #json(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<unknown> {
    const response = await this.#send(
      method,
      path,
      { "content-type": "application/json" },
      JSON.stringify(body),
      signal,
    )
    const json = (await readJson(response)) as { data?: unknown } | undefined
    return json?.data
  }

  /** Sends a request; rejects with `NetworkError` without an answer and `HttpError` on a status >= 300. */
  async #send(
    method: string,
    path: string,
    headers: Record<string, string>,
    body: string | Uint8Array,
    signal?: AbortSignal,
  ): Promise<Response> {
    const timeout = AbortSignal.timeout(this.#timeoutMs)
    let response: Response
    try {
      response = await fetch(`${this.#baseUrl}${path}`, {
        method,
        headers: { ...headers, [SegmentHeaders.token]: this.#token },
        body,
        signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
      })
    } catch (cause) {
      if (signal?.aborted) throw cause
      const reason =
        cause instanceof Error ? (cause.cause instanceof Error ? cause.cause.message : cause.message) : ""
      throw new NetworkError({ message: `${method} ${path}: ${reason || String(cause)}`, cause })
    }
    if (response.status >= 300) {
      const json = await readJson(response)
      const failure = decodeFailure(json)
      const after = retryAfter(response.headers.get("retry-after"))
      const details = Result.isSuccess(failure)
        ? {
            message: failure.success.message,
            errorCode: failure.success.error_code,
            ...(failure.success.field === undefined ? {} : { field: failure.success.field }),
            ...(failure.success.current_status === undefined
              ? {}
              : { currentStatus: failure.success.current_status }),
          }
        : looseFailure(json, response)
      throw new HttpError({
        status: response.status,
        ...details,
        message: `${method} ${path}: ${response.status} ${details.message}`,
        ...(after === undefined ? {} : { retryAfterMs: after }),
      })
    }
    return response
  }
}

const readJson = async (response: Response): Promise<unknown> => {
  const text = await response.text()
  if (text === "") return undefined
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** A failure body that is not our envelope (a proxy's page, an unknown code): keep what can be read. */
const looseFailure = (
  json: unknown,
  response: Response,
): { message: string; errorCode?: string; currentStatus?: SessionStatus } => {
  const body = typeof json === "object" && json !== null ? (json as Record<string, unknown>) : {}
  const status = typeof body.current_status === "string" ? body.current_status : undefined
  return {
    message: typeof body.message === "string" ? body.message : response.statusText || "error",
    ...(typeof body.error_code === "string" ? { errorCode: body.error_code } : {}),
    ...(status !== undefined &&
    ["created", "starting", "active", "stopping", "stopped", "exported", "failed"].includes(status)
      ? { currentStatus: status as SessionStatus }
      : {}),
  }
}
