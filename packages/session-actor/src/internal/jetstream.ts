/** JetStream wiring shared by the stores: names, stream creation, error predicates. */
import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream"

/** True when a publish was refused because the subject moved past the expected sequence. */
export const isWrongLastSequence = (error: unknown): boolean =>
  error instanceof JetStreamApiError &&
  (error.code === JetStreamApiCodes.StreamWrongLastSequence ||
    error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)

/** True when a KV compare-and-set lost a race (the key's revision moved on). */
export const isRevisionConflict = (error: unknown): boolean =>
  error instanceof Error && /wrong last sequence|key exists/i.test(error.message)

/** Creates the stream if it is missing; leaves an existing one as it is. */
export const ensureStream = async (
  jsm: JetStreamManager,
  config: { readonly name: string; readonly subjects: ReadonlyArray<string>; readonly replicas: number },
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
      // Events are history: never deleted one by one. (An operator may still purge a subject.)
      deny_delete: true,
      duplicate_window: 2 * 60 * 1_000_000_000,
    })
  } catch (error) {
    // Another process created it first.
    if (!(error instanceof JetStreamApiError) || !/already in use/i.test(error.message)) throw error
  }
}
