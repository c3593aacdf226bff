/**
 * Live events over WebSocket. Each gateway follows the event stream with its own ordered
 * consumer (only stored events: a publish JetStream refused is never announced) and sends each
 * lifecycle event to the sockets connected here that the session named, and to those that follow
 * the session's collection (the console: `/ws?…&follow=collection`), whichever gateway ran the
 * command. Best-effort by design: webhooks are the durable path. A message that does not
 * decode as a `SessionEvent` is logged and skipped.
 */
import { type CaptureSessionMessage, decodeJson, SessionEvent } from "@capture/protocol"
import {
  type EventRouting,
  emptyRouting,
  foldEvent,
  initialState,
  nextRouting,
  type SessionRuntime,
  type SessionState,
  toLifecycleEvent,
} from "@capture/session-actor"
import { type ConsumerMessages, DeliverPolicy, jetstream } from "@nats-io/jetstream"
import { Result } from "effect"
import type { WebSocket } from "ws"
import type { ConnectionOwner } from "./ConnectionIds.js"

/** What the hub knows of a session: enough to route and describe its next event. */
interface Followed {
  readonly sequence: number
  readonly state: SessionState
  readonly routing: EventRouting
}

interface Connection {
  readonly owner: ConnectionOwner
  /** The credentials that opened it (`credentialChain`): revoking any one closes it. */
  readonly credentials: ReadonlyArray<string>
  /** The collection the socket was handed out for (`GET /collection/{cid}/websocket`), if known. */
  readonly collectionId: string | undefined
  /** Hears every session of its account's collection `collectionId`, named or not. */
  readonly followsCollection: boolean
  readonly socket: WebSocket
}

/** The close code of a socket whose credential was revoked (4000–4999: the application's own). */
export const CLOSE_REVOKED = 4001

/** Where an AI result goes: the socket its call named and the sockets of its collection. */
export interface AiRecipients {
  readonly account_id: string
  /** The end user of the rtstream's session: a socket opened for another end user hears nothing. */
  readonly end_user_id: string
  readonly collection_id: string
  readonly ws_connection_id: string | null
}

/** Sessions remembered at once; the oldest is forgotten first (reloaded on its next event). */
const FOLLOWED_LIMIT = 10_000

const decodeEvent = decodeJson(SessionEvent)

const followerKey = (accountId: string, collectionId: string): string => `${accountId} ${collectionId}`

export class WebSocketHub {
  private readonly connections = new Map<string, Connection>()
  private readonly followed = new Map<string, Followed>()
  /** `<account> <collection>` → the ids of the connections here that follow it. */
  private readonly followers = new Map<string, Set<string>>()
  private messages: ConsumerMessages | undefined
  private running: Promise<void> | undefined

  constructor(
    private readonly runtime: SessionRuntime,
    private readonly log: (message: string) => void = () => {},
  ) {}

  /** Starts following new events. */
  async start(): Promise<void> {
    const topology = this.runtime.topology
    const consumer = await jetstream(topology.nc).consumers.get(topology.eventStream, {
      filter_subjects: topology.eventSubjects,
      deliver_policy: DeliverPolicy.New,
    })
    const messages = await consumer.consume()
    this.messages = messages
    this.running = (async () => {
      for await (const message of messages) {
        const event = decodeEvent(message.data)
        if (Result.isFailure(event)) {
          this.log(
            `websocket: stream message ${message.seq} on ${message.subject} is not a known event ` +
              `(${event.failure.message}); skipped`,
          )
          continue
        }
        try {
          await this.onEvent(event.success)
        } catch (error) {
          this.log(`websocket: skipped an event: ${error instanceof Error ? error.message : String(error)}`)
        }
      }
    })()
  }

  async stop(): Promise<void> {
    await this.messages?.close()
    await this.running
    for (const { socket } of this.connections.values()) socket.close(1001, "server shutting down")
    this.connections.clear()
    this.followers.clear()
  }

  /** Registers a socket under `connectionId`; returns the function that unregisters it. */
  attach(
    connectionId: string,
    owner: ConnectionOwner,
    credentials: ReadonlyArray<string>,
    socket: WebSocket,
    collectionId?: string,
    followsCollection = false,
  ): () => void {
    const follows = followsCollection && collectionId !== undefined
    this.connections.set(connectionId, {
      owner,
      credentials,
      collectionId,
      followsCollection: follows,
      socket,
    })
    const key = follows ? followerKey(owner.account_id, collectionId) : undefined
    if (key !== undefined) this.followers.set(key, (this.followers.get(key) ?? new Set()).add(connectionId))
    return () => {
      if (this.connections.get(connectionId)?.socket === socket) this.forget(connectionId)
    }
  }

  private forget(connectionId: string): void {
    const connection = this.connections.get(connectionId)
    this.connections.delete(connectionId)
    if (connection?.followsCollection !== true || connection.collectionId === undefined) return
    const key = followerKey(connection.owner.account_id, connection.collectionId)
    const ids = this.followers.get(key)
    ids?.delete(connectionId)
    if (ids?.size === 0) this.followers.delete(key)
  }

  /** Closes every socket here that `credentialId` (a key or token, revoked) opened or issued the token of. */
  closeOpenedBy(credentialId: string): void {
    for (const [id, connection] of this.connections) {
      if (!connection.credentials.includes(credentialId)) continue
      this.forget(id)
      connection.socket.close(CLOSE_REVOKED, "credential revoked")
    }
  }

  /**
   * Sends an AI result (already JSON) to the socket named by its call and to every socket of its
   * account opened for its collection, each once, never to a socket of another end user.
   * Returns how many sockets it went to.
   */
  sendAi(to: AiRecipients, text: string): number {
    let sent = 0
    for (const [id, connection] of this.connections) {
      if (connection.owner.account_id !== to.account_id) continue
      const endUser = connection.owner.end_user_id
      if (endUser !== null && endUser !== to.end_user_id) continue
      if (id !== to.ws_connection_id && connection.collectionId !== to.collection_id) continue
      if (connection.socket.readyState !== connection.socket.OPEN) continue
      connection.socket.send(text)
      sent++
    }
    return sent
  }

  /** How many sockets are connected here (for /metrics). */
  get connectionCount(): number {
    return this.connections.size
  }

  /** Whether any socket is connected here (followers skip work when none is). */
  get listening(): boolean {
    return this.connections.size > 0
  }

  private async onEvent(event: SessionEvent): Promise<void> {
    // Nobody listens here: stop following, the next event after a connect reloads what it needs.
    if (this.connections.size === 0) {
      this.followed.clear()
      return
    }
    const followed = await this.follow(event)
    if (followed === undefined) return
    const lifecycle = toLifecycleEvent(event, followed.state)
    if (lifecycle === undefined) return
    const message: CaptureSessionMessage = {
      channel: "capture_session",
      event: lifecycle.event,
      capture_session_id: lifecycle.capture_session_id,
      status: lifecycle.status,
      data: lifecycle.data,
    } as CaptureSessionMessage
    const text = JSON.stringify(message)
    const context = followed.state.context
    const followers =
      context.collection_id === null
        ? undefined
        : this.followers.get(followerKey(followed.routing.account_id, context.collection_id))
    const recipients =
      followers === undefined
        ? followed.routing.ws_connection_ids
        : new Set([...followed.routing.ws_connection_ids, ...followers])
    for (const id of recipients) {
      const connection = this.connections.get(id)
      // A socket hears only its own account's sessions and, when opened for an end user, only theirs.
      if (connection === undefined || connection.owner.account_id !== followed.routing.account_id) continue
      const endUser = connection.owner.end_user_id
      if (endUser !== null && endUser !== followed.state.context.end_user_id) continue
      if (connection.socket.readyState !== connection.socket.OPEN) continue
      connection.socket.send(text)
    }
  }

  /** The session folded through `event`; undefined for an event already seen. */
  private async follow(event: SessionEvent): Promise<Followed | undefined> {
    const known = this.followed.get(event.session_id)
    let next: Followed
    if (known !== undefined && event.sequence <= known.sequence) return undefined
    // The next event of a followed session, or a session's first event: fold it, no reading.
    const previous =
      known !== undefined && event.sequence === known.sequence + 1
        ? known
        : known === undefined && event.sequence === 1
          ? { state: initialState, routing: emptyRouting }
          : undefined
    if (previous !== undefined) {
      next = {
        sequence: event.sequence,
        state: foldEvent(previous.state, event),
        routing: nextRouting(previous.routing, event),
      }
    } else {
      // First sight, or events were missed: fold the stored history up to this event.
      let state = initialState
      let routing = emptyRouting
      for await (const stored of this.runtime.events.read(event.session_id)) {
        if (stored.event.sequence > event.sequence) break
        state = foldEvent(state, stored.event)
        routing = nextRouting(routing, stored.event)
      }
      if (state.context.sequence !== event.sequence) return undefined
      next = { sequence: event.sequence, state, routing }
    }
    this.followed.delete(event.session_id)
    this.followed.set(event.session_id, next)
    if (this.followed.size > FOLLOWED_LIMIT) {
      const oldest = this.followed.keys().next().value
      if (oldest !== undefined) this.followed.delete(oldest)
    }
    return next
  }
}
