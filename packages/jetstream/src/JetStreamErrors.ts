/**
 * JetStream's errors as named predicates, so callers never compare codes or messages.
 *
 * JetStream refuses a request with a JSON error whose `err_code` names the reason (nats-server's
 * `errors.json`); nats.js throws it as `JetStreamApiError` (`code` = `err_code`, `status` = the
 * HTTP-like status). nats.js names only a few codes (`JetStreamApiCodes`), so the ones we act on
 * are named here.
 *
 * ```ts
 * try { await js.publish(subject, data, { expect: { lastSubjectSequence } }) }
 * catch (error) { if (!isWrongLastSequence(error)) throw error }
 * ```
 */
import { JetStreamApiError } from "@nats-io/jetstream"
import { NoRespondersError, TimeoutError } from "@nats-io/transport-node"

/** The `err_code`s of JetStream API errors this code base acts on (nats-server `errors.json`). */
export const JetStreamErrorCode = {
  /** "JetStream system temporarily unavailable": a cluster without a leader for the request. */
  ClusterNotAvailable: 10008,
  /** "consumer name already in use". */
  ConsumerNameInUse: 10013,
  /** "consumer not found". */
  ConsumerNotFound: 10014,
  /** "no message found". */
  NoMessageFound: 10037,
  /** "stream name already in use" (with a different configuration). */
  StreamNameInUse: 10058,
  /** "stream not found". */
  StreamNotFound: 10059,
  /** "subjects overlap with an existing stream". */
  StreamSubjectsOverlap: 10065,
  /** "wrong last sequence": a guarded publish (or a KV compare-and-set) lost to another writer. */
  StreamWrongLastSequence: 10071,
  /** "consumer already exists and is still active". */
  ConsumerExistingActive: 10105,
  /** "consumer already exists" (a create with another configuration, nats-server 2.10+). */
  ConsumerAlreadyExists: 10148,
  /** "wrong last sequence" when the subject's last sequence is not known (nats-server 2.11+). */
  StreamWrongLastSequenceUnknown: 10164,
} as const

/** The `err_code` of a JetStream API error, or `undefined` for any other error. */
export const jetStreamErrorCode = (error: unknown): number | undefined =>
  error instanceof JetStreamApiError ? error.code : undefined

const hasCode =
  (...codes: ReadonlyArray<number>) =>
  (error: unknown): boolean => {
    const code = jetStreamErrorCode(error)
    return code !== undefined && codes.includes(code)
  }

/** A guarded publish was refused: the subject moved past the expected last sequence. */
export const isWrongLastSequence: (error: unknown) => boolean = hasCode(
  JetStreamErrorCode.StreamWrongLastSequence,
  JetStreamErrorCode.StreamWrongLastSequenceUnknown,
)

/**
 * A KV compare-and-set lost a race: `create` of a key that exists, or `update` at a revision
 * that moved on. (KV writes are guarded publishes, so this is a wrong last sequence.)
 */
export const isRevisionConflict: (error: unknown) => boolean = isWrongLastSequence

/**
 * The loser of two processes creating the same stream (a KV or Object Store bucket) at the same
 * moment: nats-server answers "subjects overlap with an existing stream" rather than finding it.
 */
export const isCreationRace: (error: unknown) => boolean = hasCode(JetStreamErrorCode.StreamSubjectsOverlap)

/** A stream of that name exists already, with another configuration. */
export const isStreamNameInUse: (error: unknown) => boolean = hasCode(JetStreamErrorCode.StreamNameInUse)

/** The stream does not exist. */
export const isStreamNotFound: (error: unknown) => boolean = hasCode(JetStreamErrorCode.StreamNotFound)

/** The stream holds no such message (a sequence or a subject's last message). */
export const isMessageNotFound: (error: unknown) => boolean = hasCode(JetStreamErrorCode.NoMessageFound)

/** The consumer does not exist. */
export const isConsumerNotFound: (error: unknown) => boolean = hasCode(JetStreamErrorCode.ConsumerNotFound)

/** A durable consumer of that name exists already (with another configuration, or in use). */
export const isConsumerExists: (error: unknown) => boolean = hasCode(
  JetStreamErrorCode.ConsumerNameInUse,
  JetStreamErrorCode.ConsumerExistingActive,
  JetStreamErrorCode.ConsumerAlreadyExists,
)

/** `error` or one of its causes (nats.js wraps: `RequestError` → `NoRespondersError`) passes `test`. */
const somewhereInCauses = (error: unknown, test: (error: unknown) => boolean): boolean => {
  for (
    let depth = 0, e = error;
    depth < 5 && e !== undefined;
    depth++, e = e instanceof Error ? e.cause : undefined
  ) {
    if (test(e)) return true
  }
  return false
}

/**
 * Errors a JetStream cluster gives while it elects a leader or a node rejoins: the request found
 * no responder, timed out, or JetStream said it is temporarily unavailable. Worth retrying.
 * nats.js reports no responder in three ways: `NoRespondersError`, a `RequestError` caused by one
 * (a core request, `js.publish`), and "jetstream is not enabled" caused by one (an API request).
 */
export const isTransient = (error: unknown): boolean =>
  somewhereInCauses(error, (e) => e instanceof TimeoutError || e instanceof NoRespondersError) ||
  (error instanceof JetStreamApiError &&
    (error.status === 503 ||
      error.code === JetStreamErrorCode.ClusterNotAvailable ||
      /temporarily unavailable/i.test(error.message)))
