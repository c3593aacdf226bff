/**
 * AI results over WebSocket. Each gateway follows the AI results stream (`CAPTURE_AI`) with its
 * own ordered consumer, as the hub follows the event stream: only stored results, in each
 * rtstream's order. A transcript segment becomes a `transcript` message and an utterance an
 * engine could not transcribe an `error` message naming the rtstream; a visual index's scene is a
 * `visual_index` and a `scene_index` message (clients listen for either name: the seeds use
 * both), an audio index's batch an `audio_index` message, and each alert a result fired an
 * `alert` message. Each goes to the socket the call that
 * started the work named and to the sockets of the rtstream's collection connected here.
 * Best-effort, like every WebSocket message: the API's transcript is the durable read.
 */
import { type AiStore, decodeAiEvent } from "@capture/ai"
import type {
  AlertMessage,
  AudioIndexMessage,
  ErrorMessage,
  SceneIndexMessage,
  TranscriptMessage,
  VisualIndexMessage,
} from "@capture/protocol"
import { type ConsumerMessages, DeliverPolicy, jetstream } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/transport-node"
import { Result } from "effect"
import type { WebSocketHub } from "./WebSocketHub.js"

export class AiResultFeed {
  private messages: ConsumerMessages | undefined
  private running: Promise<void> | undefined

  constructor(
    private readonly nc: NatsConnection,
    private readonly store: AiStore,
    private readonly hub: WebSocketHub,
    private readonly log: (message: string) => void = () => {},
  ) {}

  async start(): Promise<void> {
    const consumer = await jetstream(this.nc).consumers.get(this.store.topology.stream, {
      filter_subjects: this.store.topology.subjects,
      deliver_policy: DeliverPolicy.New,
    })
    const messages = await consumer.consume()
    this.messages = messages
    this.running = (async () => {
      for await (const message of messages) {
        if (!this.hub.listening) continue
        let decoded: ReturnType<typeof decodeAiEvent>
        try {
          decoded = decodeAiEvent(message.json())
        } catch (error) {
          decoded = Result.fail(error as never)
        }
        if (Result.isFailure(decoded)) {
          this.log(`websocket: AI result ${message.seq} does not decode; skipped`)
          continue
        }
        const event = decoded.success
        if (event.type === "TranscriptProduced") {
          const { routing, text, is_final, start, end } = event.data
          const frame: TranscriptMessage = {
            channel: "transcript",
            rtstream_id: event.rtstream_id,
            rtstream_name: routing.rtstream_name,
            data: { text, is_final, start, end },
          }
          this.hub.sendAi(routing, JSON.stringify(frame))
        } else if (event.type === "TranscriptionFailed") {
          const { routing, message: reason, utterance } = event.data
          const frame: ErrorMessage = {
            channel: "error",
            error_code: "engine_unavailable",
            message: `transcription of ${routing.rtstream_name} (${event.rtstream_id}) failed for utterance ${utterance} (${event.data.engine}): ${reason}`,
            rtstream_id: event.rtstream_id,
            rtstream_name: routing.rtstream_name,
          }
          this.hub.sendAi(routing, JSON.stringify(frame))
        } else if (event.type === "SceneIndexed") {
          const { routing, text, start, end, index_id, kind } = event.data
          const fields = {
            rtstream_id: event.rtstream_id,
            rtstream_name: routing.rtstream_name,
            index_id,
            data: { text, start, end },
          }
          if (kind === "visual") {
            const visual: VisualIndexMessage = { channel: "visual_index", ...fields }
            const scene: SceneIndexMessage = { channel: "scene_index", ...fields }
            this.hub.sendAi(routing, JSON.stringify(visual))
            this.hub.sendAi(routing, JSON.stringify(scene))
          } else {
            const audio: AudioIndexMessage = { channel: "audio_index", ...fields }
            this.hub.sendAi(routing, JSON.stringify(audio))
          }
          // Each alert the result fired, to the alert's socket and the collection's.
          for (const alert of event.data.alerts ?? []) {
            const frame: AlertMessage = {
              channel: "alert",
              rtstream_id: event.rtstream_id,
              rtstream_name: routing.rtstream_name,
              index_id,
              data: {
                label: alert.label,
                triggered: true,
                confidence: alert.confidence,
                alert_id: alert.alert_id,
                event_id: alert.event_id,
                text,
                explanation: alert.explanation,
                start,
                end,
              },
            }
            this.hub.sendAi(alert.routing, JSON.stringify(frame))
          }
        }
      }
    })()
  }

  async stop(): Promise<void> {
    await this.messages?.close()
    await this.running
  }
}
