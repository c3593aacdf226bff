/**
 * Transcription end to end: a session's mic recorded from known speech (Festival, AAC segments),
 * uploaded to `capture serve` as the recorder uploads, and a WebSocket that keeps every message.
 */
import { sha256Hex } from "@capture/media"
import { decodeUnknown, type SessionId, WebSocketMessage } from "@capture/protocol"
import { LOOPBACK, type SpeechRecording } from "@capture/testkit"
import { Result } from "effect"
import { WebSocket } from "ws"
import { type CaptureServer, pollUntil } from "./endToEnd.js"

const decodeMessage = decodeUnknown(WebSocketMessage)

/** A socket keeping every message after the first (`connection_id`). */
export interface RecordingSocket {
  readonly connectionId: string
  readonly messages: ReadonlyArray<WebSocketMessage>
  readonly undecodable: ReadonlyArray<string>
  readonly close: () => void
}

export const openSocket = async (
  server: CaptureServer,
  collectionId = "default",
): Promise<RecordingSocket> => {
  const url = (await server.data("GET", `/collection/${collectionId}/websocket`)).websocket_url as string
  const socket = new WebSocket(url)
  const messages: Array<WebSocketMessage> = []
  const undecodable: Array<string> = []
  const connectionId = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no connection_id within 15 s")), 15_000)
    socket.on("message", (raw) => {
      const text = String(raw)
      let decoded: Result.Result<WebSocketMessage, unknown>
      try {
        decoded = decodeMessage(JSON.parse(text))
      } catch (error) {
        decoded = Result.fail(error)
      }
      if (Result.isFailure(decoded)) undecodable.push(text)
      else if ("connection_id" in decoded.success) {
        clearTimeout(timer)
        resolve(decoded.success.connection_id)
      } else messages.push(decoded.success)
    })
    socket.once("error", reject)
  })
  return { connectionId, messages, undecodable, close: () => socket.terminate() }
}

/** PUTs segment `index` of the recording to the ingest route, as the recorder does. */
export const uploadSegment = async (
  server: CaptureServer,
  sessionId: SessionId,
  recording: Pick<SpeechRecording, "segments">,
  index: number,
  startMs: number,
  channelId = "mic:default",
): Promise<void> => {
  const segment = recording.segments[index]
  if (segment === undefined) throw new Error(`no segment ${index}`)
  const response = await fetch(
    `${server.base}/capture/session/${sessionId}/channels/${encodeURIComponent(channelId)}/segments/${index}`,
    {
      method: "PUT",
      headers: {
        "x-access-token": server.apiKey,
        "content-type": "video/mp2t",
        "x-segment-start-ms": String(startMs + segment.offsetMs),
        "x-segment-duration-ms": String(segment.durationMs),
        "x-segment-sha256": sha256Hex(segment.bytes),
        ...(index === recording.segments.length - 1 ? { "x-segment-final": "1" } : {}),
      },
      body: segment.bytes,
    },
  )
  if (response.status !== 200)
    throw new Error(`segment ${index}: ${response.status} ${await response.text()}`)
}

/**
 * A session of `endUser` recording one channel (the mic unless told), created and started, with
 * segment 0 of `source` uploaded: its id and the channel's rtstream.
 */
export const startedSession = async (
  server: CaptureServer,
  source: Pick<SpeechRecording, "segments">,
  options: {
    readonly endUser: string
    readonly startMs: number
    readonly channelId?: string
    readonly wsConnectionId?: string
  },
): Promise<{ readonly sessionId: SessionId; readonly rtstream: string }> => {
  const channelId = options.channelId ?? "mic:default"
  const created = await server.data("POST", "/collection/default/capture/session", {
    end_user_id: options.endUser,
    ...(options.wsConnectionId === undefined ? {} : { ws_connection_id: options.wsConnectionId }),
  })
  const sessionId = created.id as SessionId
  await server.data("POST", "/capture/session/start", {
    session_id: sessionId,
    channels: [{ channel_id: channelId }],
  })
  await uploadSegment(server, sessionId, source, 0, options.startMs, channelId)
  const view = await pollUntil(
    "the rtstream",
    () => server.data("GET", `/collection/default/capture/session/${sessionId}`),
    (session) => (session.rtstreams as ReadonlyArray<unknown>).length === 1,
  )
  const rtstream = (view.rtstreams as ReadonlyArray<{ rtstream_id: string }>)[0]?.rtstream_id ?? ""
  return { sessionId, rtstream }
}

export { LOOPBACK }
