/** Driving sessions through the actor in tests, and reading what happened to them. */

import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { MediaStore } from "@capture/media"
import {
  type ChannelInput,
  type CommandId,
  DEFAULT_COLLECTION,
  newCommandId,
  newSessionId,
  type SessionCommand,
  type SessionEvent,
  type SessionId,
} from "@capture/protocol"
import { type SessionRuntime, startSessionRuntime } from "@capture/session-actor"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import type { JetStreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"

type Without<C> = C extends unknown ? Omit<C, "type" | "command_id" | "session_id"> : never
type Payload<T extends SessionCommand["type"]> = Without<Extract<SessionCommand, { type: T }>>

export const cmd = <T extends SessionCommand["type"]>(type: T, session_id: SessionId, payload: Payload<T>) =>
  ({ type, command_id: newCommandId() as CommandId, session_id, ...payload }) as unknown as SessionCommand

export const run = async (runtime: SessionRuntime, command: SessionCommand) => {
  const outcome = await runtime.host.execute(command)
  if (Result.isFailure(outcome)) throw new Error(`${command.type}: ${outcome.failure.message}`)
  return outcome.success
}

/** Creates, starts and activates a session. */
export const startSession = async (
  runtime: SessionRuntime,
  channels: ReadonlyArray<ChannelInput>,
  primary?: string,
): Promise<SessionId> => {
  const id = newSessionId()
  await run(runtime, cmd("CreateSession", id, { collection_id: DEFAULT_COLLECTION, end_user_id: "user-1" }))
  await run(
    runtime,
    cmd("StartSession", id, {
      channels,
      ...(primary === undefined ? {} : { primary_video_channel_id: primary as never }),
    }),
  )
  await run(runtime, cmd("ReportMediaReceived", id, { channel_id: (channels[0] as ChannelInput).channel_id }))
  return id
}

/** Stops a session and finishes stopping it: `stopped`. Returns when the stop was stored. */
export const stopSession = async (runtime: SessionRuntime, id: SessionId): Promise<void> => {
  await run(runtime, cmd("StopSession", id, {}))
  await run(runtime, cmd("FinishStopping", id, {}))
}

export const history = async (runtime: SessionRuntime, id: SessionId): Promise<SessionEvent[]> => {
  const events: SessionEvent[] = []
  for await (const { event } of runtime.events.read(id)) events.push(event)
  return events
}

/** Waits until the session's history satisfies `done`. */
export const waitForHistory = async (
  runtime: SessionRuntime,
  id: SessionId,
  done: (events: SessionEvent[]) => boolean,
  timeoutMs = 30_000,
): Promise<SessionEvent[]> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const events = await history(runtime, id)
    if (done(events)) return events
    if (Date.now() > deadline)
      throw new Error(`history of ${id} not as expected: ${events.map((e) => e.type).join(", ")}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Waits until a durable consumer has nothing pending or unacknowledged. */
export const drained = async (jsm: JetStreamManager, stream: string, durable: string, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const info = await jsm.consumers.info(stream, durable)
    if (info.num_pending === 0 && info.num_ack_pending === 0) return
    if (Date.now() > deadline) throw new Error(`${durable} still has work after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** What a muxer suite runs against: a nats-server, the session runtime with its workers, a media store. */
export interface MuxerHarness {
  readonly dir: string
  readonly nats: NatsServerHandle
  readonly nc: NatsConnection
  readonly media: MediaStore
  readonly runtime: SessionRuntime
  /** Stops the runtime, the connection and the server, and removes `dir`. */
  readonly stop: () => Promise<void>
}

/** Starts a nats-server, the session runtime (workers and reactor) and a media store; `dir` for recordings. */
export const startHarness = async (name: string): Promise<MuxerHarness> => {
  const dir = await mkdtemp(join(tmpdir(), `${name}-`))
  const nats = await startNatsServer()
  const nc = await connect({ servers: nats.url })
  const media = await MediaStore.open(nc)
  const runtime = await startSessionRuntime(nc, {
    workers: true,
    reactor: { segments: media, silenceTimeoutMs: 600_000 },
  })
  return {
    dir,
    nats,
    nc,
    media,
    runtime,
    stop: async () => {
      await runtime.stop()
      await nc.close()
      await nats.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

type Completed = Extract<SessionEvent, { type: "ExportCompleted" }>

/** Waits for the session's export to complete; returns every `ExportCompleted` in its history then. */
export const exportsCompleted = async (
  runtime: SessionRuntime,
  id: SessionId,
  timeoutMs: number,
): Promise<Completed[]> => {
  const events = await waitForHistory(
    runtime,
    id,
    (es) => es.some((e) => e.type === "ExportCompleted"),
    timeoutMs,
  )
  return events.filter((e): e is Completed => e.type === "ExportCompleted")
}
