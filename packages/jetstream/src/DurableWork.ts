/**
 * Work shared through a JetStream durable consumer: every process that runs the same worker
 * consumes from one durable, so each message is handled by one of them at a time. A message
 * is acked once handled, kept alive (`working()`) while its handler runs, retried after a delay
 * when the handler throws, deferred when the handler says it is not its turn yet (`later`), and
 * parked (`term()`, logged) when it does not decode: a malformed message never stops the consumer.
 *
 * ```ts
 * const work = await startDurableWork(nc, { stream: "CAPTURE_MEDIA", durable: "capture-ai", … })
 * await work.stop()
 * ```
 */

import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/transport-node"
import { Result, type Tracer } from "effect"
import { ensureDurableConsumer } from "./Consumers.js"
import { consumeSpan, endSpan } from "./Telemetry.js"

export interface DurableWorkOptions<A> {
  readonly stream: string
  readonly durable: string
  readonly filterSubject: string
  /** Where a new durable starts. `New` for a worker added to a deployment with history. */
  readonly deliverPolicy?: DeliverPolicy
  /** Handlers running at once in this process. */
  readonly parallel: number
  /** How long a message may go unacknowledged (while its handler is not alive) before redelivery. */
  readonly ackWaitMs: number
  /** Delay before a failed message is delivered again. */
  readonly retryDelayMs?: number
  /** The consumer's limit of unacknowledged messages, used when this process creates it (default 1 000). */
  readonly maxAckPending?: number
  readonly decode: (message: JsMsg) => Result.Result<A, unknown>
  /**
   * Handles a message; answering `later(ms)` means not yet: deliver it again after `ms` (no log).
   * Any other answer acknowledges it. `span` (tracing on) continues the trace of the message's
   * publisher: commands the handler issues pass it on.
   */
  readonly handle: (value: NoInfer<A>, message: JsMsg, span: Tracer.Span | undefined) => Promise<unknown>
  readonly log: (message: string) => void
}

/** Where a worker's durable consumer reads: enough to create it before any worker runs. */
export type DurableWorkTarget = Pick<
  DurableWorkOptions<unknown>,
  "stream" | "durable" | "filterSubject" | "deliverPolicy" | "ackWaitMs" | "maxAckPending"
>

/**
 * Creates the worker's durable consumer if missing (the first creator's settings are kept). A
 * process that causes the messages but runs no worker (`capture serve --role api`) calls it at
 * start, so a durable that starts at new messages (`DeliverPolicy.New`) misses none of its own.
 */
export const ensureDurableWork = async (nc: NatsConnection, target: DurableWorkTarget): Promise<void> => {
  await ensureDurableConsumer(await jetstreamManager(nc), target.stream, {
    durable_name: target.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: target.deliverPolicy ?? DeliverPolicy.All,
    filter_subject: target.filterSubject,
    ack_wait: target.ackWaitMs * 1_000_000,
    max_ack_pending: target.maxAckPending ?? 1_000,
    max_deliver: -1,
  })
}

/** A handler's answer for a message whose turn has not come (its predecessor is not done). */
export interface Later {
  readonly _tag: "Later"
  readonly delayMs: number
}

/** Not yet: deliver the message again after `delayMs`. */
export const later = (delayMs: number): Later => ({ _tag: "Later", delayMs })

/** Whether a handler answered `later`. */
export const isLater = (outcome: unknown): outcome is Later =>
  typeof outcome === "object" && outcome !== null && (outcome as { _tag?: unknown })._tag === "Later"

/** A running worker loop; `stop` closes the subscription and waits for handlers in progress. */
export interface DurableWork {
  readonly stop: () => Promise<void>
}

export const startDurableWork = async <A>(
  nc: NatsConnection,
  options: DurableWorkOptions<A>,
): Promise<DurableWork> => {
  await ensureDurableWork(nc, options)
  const consumer = await jetstream(nc).consumers.get(options.stream, options.durable)
  const messages: ConsumerMessages = await consumer.consume({
    max_messages: Math.max(4, options.parallel * 2),
  })
  const running = new Set<Promise<void>>()

  const work = async (message: JsMsg): Promise<void> => {
    const decoded = (() => {
      try {
        return options.decode(message)
      } catch (error) {
        return Result.fail(error)
      }
    })()
    if (Result.isFailure(decoded)) {
      options.log(
        `${options.durable}: ${message.subject} #${message.seq} does not decode (${String(decoded.failure)}); parked`,
      )
      message.term()
      return
    }
    const alive = setInterval(() => message.working(), Math.max(200, options.ackWaitMs / 3))
    const span = consumeSpan(options.durable, message)
    try {
      const outcome = await options.handle(decoded.success, message, span)
      if (isLater(outcome)) message.nak(outcome.delayMs)
      else message.ack()
      endSpan(span)
    } catch (error) {
      options.log(
        `${options.durable}: ${message.subject} #${message.seq} failed (${String(error)}); will retry`,
      )
      message.nak(options.retryDelayMs ?? 1_000)
      endSpan(span, error)
    } finally {
      clearInterval(alive)
    }
  }

  const loop = (async () => {
    for await (const message of messages) {
      // Take the next message only with a free slot, so the rest stay available to other processes.
      while (running.size >= options.parallel) await Promise.race(running)
      const task = work(message)
      running.add(task)
      void task.finally(() => running.delete(task))
    }
  })()

  return {
    stop: async () => {
      await messages.close()
      await loop
      await Promise.allSettled([...running])
    },
  }
}
