/**
 * Creating streams from any number of processes at once: every instance of every role creates
 * what it needs as it starts, so none may assume it is the only one starting.
 *
 * ```ts
 * await ensureStream(jsm, { name: "CAPTURE_EVENTS", subjects: ["capture.events.>"], replicas: 3 })
 * const kv = await createRacing(() => new Kvm(nc).create("capture_sessions", { replicas: 3 }))
 * ```
 */
import { DiscardPolicy, type JetStreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream"
import { isCreationRace, isStreamNameInUse, isStreamNotFound } from "./JetStreamErrors.js"

/** What `ensureStream` creates when the stream is missing. */
export interface StreamSpec {
  readonly name: string
  readonly subjects: ReadonlyArray<string>
  /** 1 on a single server, 3 on a cluster. */
  readonly replicas: number
  /** Refuse deleting single messages (default true): for streams that are history. */
  readonly denyDelete?: boolean
}

// The window in which JetStream drops a second publish with the same `Nats-Msg-Id`.
const DUPLICATE_WINDOW_MS = 2 * 60 * 1_000

/**
 * Runs an idempotent create (a bucket's, a stream's), again when it lost a creation race: the
 * next try finds what the winner made. Other errors, and a race lost `attempts` times, are thrown.
 */
export const createRacing = async <A>(create: () => Promise<A>, attempts = 5): Promise<A> => {
  for (let attempt = 1; ; attempt++) {
    try {
      return await create()
    } catch (error) {
      if (!isCreationRace(error) || attempt >= attempts) throw error
      await new Promise((resolve) => setTimeout(resolve, 50 * attempt))
    }
  }
}

/**
 * Creates the stream (file storage, limits retention, a two-minute duplicate window) if it is
 * missing; leaves an existing one as it is, whatever its configuration. Safe from many processes
 * at once: a lost creation race is retried (`createRacing`), and finds the winner's stream.
 */
export const ensureStream = (jsm: JetStreamManager, spec: StreamSpec): Promise<void> =>
  createRacing(async () => {
    try {
      await jsm.streams.info(spec.name)
      return
    } catch (error) {
      if (!isStreamNotFound(error)) throw error
    }
    try {
      await jsm.streams.add({
        name: spec.name,
        subjects: [...spec.subjects],
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.Old,
        num_replicas: spec.replicas,
        // History is never deleted one by one. (An operator may still purge a subject.)
        deny_delete: spec.denyDelete ?? true,
        duplicate_window: DUPLICATE_WINDOW_MS * 1_000_000,
      })
    } catch (error) {
      // Another process created it first, with another configuration: theirs stays.
      if (!isStreamNameInUse(error)) throw error
    }
  })
