/** A session with a mic, recorded from known speech, on a real nats-server: what the pipeline tests share. */
import { findOnPath, resolveFfmpeg } from "@capture/binaries"
import { MediaStore, sha256Hex } from "@capture/media"
import {
  type ChannelId,
  type CollectionId,
  newCommandId,
  newSessionId,
  type RtstreamId,
  type SessionId,
} from "@capture/protocol"
import { type SessionRuntime, startSessionRuntime } from "@capture/session-actor"
import { type NatsServerHandle, type ScreenRecording, screenRecording, waitFor } from "@capture/testkit"
import type { NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import { AiStore } from "../src/index.js"
import type { TranscriptionTarget } from "../src/Transcription.js"

export const ffmpeg = resolveFfmpeg()
/** The decoders a worker here has: faad where installed (scripts/bootstrap.sh installs it). */
export const decoders = { ffmpeg, faad: findOnPath("faad") }

export interface Deployment {
  readonly runtime: SessionRuntime
  readonly media: MediaStore
  readonly store: AiStore
}

/** One process's stores and session workers under `prefix`. */
export const openDeployment = async (nc: NatsConnection, prefix: string): Promise<Deployment> => {
  const media = await MediaStore.open(nc, { prefix })
  const runtime = await startSessionRuntime(nc, {
    workers: true,
    topology: { prefix },
    reactor: { segments: media, silenceTimeoutMs: 600_000 },
  })
  return { runtime, media, store: await AiStore.open(nc, { prefix }) }
}

const ok = async (runtime: SessionRuntime, command: Parameters<SessionRuntime["host"]["execute"]>[0]) => {
  const outcome = await runtime.host.execute(command)
  if (Result.isFailure(outcome)) throw new Error(`${command.type}: ${outcome.failure.message}`)
  return outcome.success
}

/** Segments recorded ahead of a test (speech or a screen), each at its offset in the recording. */
export interface RecordedSegments {
  readonly segments: ReadonlyArray<{
    readonly offsetMs: number
    readonly durationMs: number
    readonly bytes: Uint8Array
  }>
}

/**
 * A started session whose `channelId` (the mic by default) has sent segment 0: active, with its
 * rtstreams. Its other channel is the display, or the mic for a display session.
 */
export const activeSession = async (
  deployment: Deployment,
  recording: RecordedSegments,
  startMs: number,
  channelId: ChannelId = "mic:default",
): Promise<{ readonly sessionId: SessionId; readonly target: TranscriptionTarget }> => {
  const sessionId = newSessionId()
  const { runtime } = deployment
  await ok(runtime, {
    type: "CreateSession",
    command_id: newCommandId(),
    session_id: sessionId,
    collection_id: "default" as CollectionId,
    end_user_id: "user-1",
  })
  await ok(runtime, {
    type: "StartSession",
    command_id: newCommandId(),
    session_id: sessionId,
    channels: [
      { channel_id: channelId },
      { channel_id: channelId === "display:1" ? "mic:default" : "display:1" },
    ],
  })
  await putSegment(deployment, sessionId, recording, 0, startMs, channelId)
  const view = await waitFor(
    () => runtime.readModel.get(sessionId),
    (record) => record?.session.rtstreams.some((r) => r.name === channelId) === true,
  )
  const rtstream = view?.session.rtstreams.find((r) => r.name === channelId)
  if (view === undefined || rtstream === undefined) throw new Error("no rtstream")
  return {
    sessionId,
    target: {
      rtstream_id: rtstream.rtstream_id as RtstreamId,
      rtstream_name: rtstream.name,
      session_id: sessionId,
      channel_id: channelId,
      account_id: view.account_id,
      end_user_id: view.session.end_user_id,
      collection_id: view.session.collection_id,
    },
  }
}

/** Stores segment `index` of the recording as the recorder's upload would. */
export const putSegment = async (
  deployment: Deployment,
  sessionId: SessionId,
  recording: RecordedSegments,
  index: number,
  startMs: number,
  channelId: ChannelId = "mic:default",
): Promise<void> => {
  const segment = recording.segments[index]
  if (segment === undefined) throw new Error(`no segment ${index}`)
  await deployment.media.put(
    {
      session_id: sessionId,
      channel_id: channelId,
      index,
      start_ms: startMs + segment.offsetMs,
      duration_ms: segment.durationMs,
      sha256: sha256Hex(segment.bytes),
      final: index === recording.segments.length - 1,
      container: "mpegts",
    },
    segment.bytes,
  )
}

/** A blank screen (segment 0, before an index starts), a budget review for 4 s, then an invoice for 4 s. */
export const budgetThenInvoice = (): Promise<ScreenRecording> =>
  screenRecording(ffmpeg, [
    { lines: [], seconds: 2 },
    { lines: ["Quarterly budget review", "Slack general channel"], seconds: 4 },
    { lines: ["Invoice overdue reminder"], seconds: 4 },
  ])

/** A suite's teardown: its closers last-first, then its connection and its nats-server. */
export const closeAll = async (
  closers: Array<() => Promise<void>>,
  nc: NatsConnection | undefined,
  nats: NatsServerHandle | undefined,
): Promise<void> => {
  for (const close of closers.reverse()) await close()
  await nc?.close()
  await nats?.stop()
}

/** The lower-case words of a text. */
export const words = (text: string): Array<string> => text.toLowerCase().match(/[a-z]+/g) ?? []
