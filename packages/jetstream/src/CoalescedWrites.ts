/**
 * One socket write per event-loop turn for a NATS connection.
 *
 * nats.js queues what a connection sends and flushes it in a microtask after the first send, so
 * a busy process writes to the socket once per microtask drain: after every timer, every chunk
 * read from a socket, every HTTP request. Profiles of `capture serve` put ~30 % of its CPU in
 * those writes (the kernel's loopback send path), with 32 sessions in flight. Deferring the
 * flush to `setImmediate` sends everything a turn of the event loop produced in one write; a
 * write waits at most for the turn to end. The size threshold at which nats.js flushes at once
 * is kept.
 */
import type { NatsConnection } from "@nats-io/transport-node"

/** The part of nats.js's protocol handler this touches (not in its public types). */
interface FlushingProtocol {
  flushPending: () => void
  readonly outbound: { size: () => number }
  readonly pendingLimit: number
}

const isFlushingProtocol = (protocol: unknown): protocol is FlushingProtocol =>
  typeof protocol === "object" &&
  protocol !== null &&
  typeof (protocol as Partial<FlushingProtocol>).flushPending === "function" &&
  typeof (protocol as Partial<FlushingProtocol>).outbound?.size === "function" &&
  typeof (protocol as Partial<FlushingProtocol>).pendingLimit === "number"

/**
 * Makes `nc` flush what it queued once per event-loop turn instead of once per microtask drain.
 * Order is unchanged (one queue, one socket); `flush()` and `drain()` still wait for the server.
 * Throws when the connection is not nats.js's own (its internals moved): better than silently
 * measuring something else.
 */
export const coalesceWrites = (nc: NatsConnection): void => {
  const protocol = (nc as unknown as { readonly protocol?: unknown }).protocol
  if (!isFlushingProtocol(protocol)) throw new Error("coalesceWrites: not a nats.js connection it knows")
  const flushNow = protocol.flushPending.bind(protocol)
  let scheduled = false
  protocol.flushPending = () => {
    // Past nats.js's threshold it writes at once, as it would have.
    if (protocol.outbound.size() >= protocol.pendingLimit) return flushNow()
    if (scheduled) return
    scheduled = true
    setImmediate(() => {
      scheduled = false
      flushNow()
    })
  }
}
