/** JetStream wiring shared by the stores: names, stream creation, error predicates. */
import {
  type ConsumerConfig,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream"
import { NoRespondersError, TimeoutError } from "@nats-io/transport-node"

/** True when a publish was refused because the subject moved past the expected sequence. */
export const isWrongLastSequence = (error: unknown): boolean =>
  error instanceof JetStreamApiError &&
  (error.code === JetStreamApiCodes.StreamWrongLastSequence ||
    error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)

/** True when a KV compare-and-set lost a race (the key's revision moved on). */
export const isRevisionConflict = (error: unknown): boolean =>
  error instanceof Error && /wrong last sequence|key exists/i.test(error.message)

/**
 * True for errors a JetStream cluster gives while it elects a leader or a node rejoins:
 * the request found no responder, timed out, or JetStream said it is temporarily unavailable.
 */
export const isTransient = (error: unknown): boolean =>
  error instanceof TimeoutError ||
  error instanceof NoRespondersError ||
  (error instanceof JetStreamApiError &&
    (error.status === 503 || /temporarily unavailable/i.test(error.message)))

/**
 * Runs a JetStream API request, retrying transient failures with growing pauses for up to
 * `budgetMs`. Only for requests that are safe to repeat (reads, ephemeral consumer creation).
 */
export const retryTransient = async <A>(request: () => Promise<A>, budgetMs = 20_000): Promise<A> => {
  const deadline = Date.now() + budgetMs
  for (let pause = 100; ; pause = Math.min(pause * 2, 2_000)) {
    try {
      return await request()
    } catch (error) {
      if (!isTransient(error) || Date.now() + pause > deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, pause))
    }
  }
}

/**
 * The loser of two processes creating the same stream (a KV or Object Store bucket) at the same
 * moment: nats-server answers "subjects overlap with an existing stream" rather than finding it.
 */
export const isCreationRace = (error: unknown): boolean =>
  error instanceof JetStreamApiError && /subjects overlap/i.test(error.message)

/**
 * Runs an idempotent create (a bucket's, a stream's), again when it lost a creation race: the
 * next try finds what the winner made. Every instance starts this way, so none may assume it is
 * the only one starting.
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
 * Creates the stream if it is missing; leaves an existing one as it is. Safe from many processes
 * at once. `denyDelete` (default true) refuses deleting single messages: for streams that are history.
 */
export const ensureStream = async (
  jsm: JetStreamManager,
  config: {
    readonly name: string
    readonly subjects: ReadonlyArray<string>
    readonly replicas: number
    readonly denyDelete?: boolean
  },
): Promise<void> => {
  try {
    await jsm.streams.info(config.name)
    return
  } catch (error) {
    if (!(error instanceof JetStreamApiError) || error.code !== JetStreamApiCodes.StreamNotFound) throw error
  }
  try {
    await jsm.streams.add({
      name: config.name,
      subjects: [...config.subjects],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      num_replicas: config.replicas,
      // History is never deleted one by one. (An operator may still purge a subject.)
      deny_delete: config.denyDelete ?? true,
      duplicate_window: 2 * 60 * 1_000_000_000,
    })
  } catch (error) {
    // Another process created it first (or is creating it right now: look again).
    if (isCreationRace(error)) return ensureStream(jsm, config)
    if (!(error instanceof JetStreamApiError) || !/already in use/i.test(error.message)) throw error
  }
}

/**
 * Creates a durable consumer unless it exists. Many processes may race: the first one's settings
 * are kept, and the others attach to it.
 */
export const ensureDurableConsumer = async (
  jsm: JetStreamManager,
  stream: string,
  config: Partial<ConsumerConfig> & { readonly durable_name: string },
): Promise<void> => {
  try {
    await jsm.consumers.add(stream, config)
  } catch (error) {
    if (!(error instanceof JetStreamApiError) || !/already in use|exists/i.test(error.message)) throw error
  }
}
