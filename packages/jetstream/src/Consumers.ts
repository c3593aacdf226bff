/**
 * Durable consumers shared by every instance of a role: each instance ensures the consumer as it
 * starts and then pulls from it, so the work is split between whoever is running.
 *
 * ```ts
 * await ensureDurableConsumer(jsm, "CAPTURE_EVENTS", { durable_name: "capture-projector", ack_policy: AckPolicy.Explicit })
 * const consumer = await js.consumers.get("CAPTURE_EVENTS", "capture-projector")
 * ```
 */
import type { ConsumerConfig, JetStreamManager } from "@nats-io/jetstream"
import { isConsumerExists } from "./JetStreamErrors.js"

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
    if (!isConsumerExists(error)) throw error
  }
}
