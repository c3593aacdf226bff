/**
 * @capture/jetstream — the JetStream kit shared by every store: streams and durable consumers
 * created safely from many processes, publish-with-ack over one reply subscription, retries
 * through a cluster's leader elections, JetStream's errors as named predicates, and the metrics
 * and trace context (W3C `traceparent` in message headers) every package reports with.
 */
export { coalesceWrites } from "./CoalescedWrites.js"
export { ensureDurableConsumer } from "./Consumers.js"
export {
  type DurableWork,
  type DurableWorkOptions,
  type DurableWorkTarget,
  ensureDurableWork,
  type Later,
  later,
  startDurableWork,
} from "./DurableWork.js"
export {
  isConsumerExists,
  isConsumerNotFound,
  isCreationRace,
  isMessageNotFound,
  isRevisionConflict,
  isStreamNameInUse,
  isStreamNotFound,
  isTransient,
  isWrongLastSequence,
  JetStreamErrorCode,
  jetStreamErrorCode,
} from "./JetStreamErrors.js"
export { JetStreamPublisher, type PublishExpectations } from "./JetStreamPublisher.js"
export { retryTransient } from "./Retries.js"
export { SharedCounters, type SharedCountersOptions } from "./SharedCounters.js"
export { createRacing, ensureStream, type StreamSpec } from "./Streams.js"
export {
  consumeSpan,
  counter,
  currentSpanParent,
  EXPORT_BOUNDARIES,
  endSpan,
  gauge,
  histogram,
  inSpan,
  LAG_BOUNDARIES,
  LATENCY_BOUNDARIES,
  observeLag,
  parentFromTraceparent,
  parentOf,
  type SpanParent,
  secondsSince,
  setTracer,
  startSpan,
  TRACEPARENT,
  traceparentOf,
  tracing,
} from "./Telemetry.js"
