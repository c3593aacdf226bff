/**
 * Keeps a `SearchIndex` following the AI results stream: an ordered consumer from the sequence
 * after the index's last, events applied in small transactions. Each process keeps its own index
 * (in memory by default, rebuilt from the stream at start; or a file, continued), so any number of
 * gateways answer searches; before answering, a search waits (briefly) until this process has
 * applied what the stream held when it was asked, so a result stored is a result found.
 */
import {
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import { type AiStore, decodeAiEvent } from "../store/AiStore.js"
import type { SearchIndex } from "./SearchIndex.js"

export class SearchProjection {
  private messages: ConsumerMessages | undefined
  private running: Promise<void> | undefined

  private constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly store: AiStore,
    readonly index: SearchIndex,
    private readonly log: (message: string) => void,
  ) {}

  static async start(
    nc: NatsConnection,
    store: AiStore,
    index: SearchIndex,
    log: (message: string) => void = () => {},
  ): Promise<SearchProjection> {
    const projection = new SearchProjection(nc, await jetstreamManager(nc), store, index, log)
    await projection.follow()
    return projection
  }

  private async follow(): Promise<void> {
    const info = await this.jsm.streams.info(this.store.topology.stream)
    // The stream lost what the index holds (purged, or another stream of the same name): rebuild.
    if (this.index.streamSequence > info.state.last_seq) this.index.reset()
    const after = this.index.streamSequence
    const consumer = await jetstream(this.nc).consumers.get(this.store.topology.stream, {
      filter_subjects: this.store.topology.subjects,
      ...(after === 0
        ? { deliver_policy: DeliverPolicy.All }
        : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 }),
    })
    const messages = await consumer.consume({ max_messages: 1024 })
    this.messages = messages
    this.running = (async () => {
      let batch: Array<Parameters<SearchIndex["apply"]>[0][number]> = []
      const flush = () => {
        if (batch.length > 0) this.index.apply(batch)
        batch = []
      }
      for await (const message of messages) {
        let decoded: ReturnType<typeof decodeAiEvent>
        try {
          decoded = decodeAiEvent(message.json())
        } catch (error) {
          decoded = Result.fail(error as never)
        }
        if (Result.isFailure(decoded)) {
          this.log(`search: AI result ${message.seq} does not decode; skipped`)
          batch.push({ event: null, streamSequence: message.seq })
        } else batch.push({ event: decoded.success, streamSequence: message.seq })
        // Applied when the consumer has nothing more in hand, or every 500 events.
        if (message.info.pending === 0 || batch.length >= 500) flush()
      }
      flush()
    })()
  }

  /** Waits until what the stream holds now is applied here (at most `timeoutMs`). */
  async catchUp(timeoutMs = 2_000): Promise<void> {
    const last = (await this.jsm.streams.info(this.store.topology.stream)).state.last_seq
    const until = Date.now() + timeoutMs
    while (this.index.streamSequence < last && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  async stop(): Promise<void> {
    await this.messages?.close()
    await this.running
  }
}
