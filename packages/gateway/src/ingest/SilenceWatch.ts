/**
 * A recorder that goes silent (crashed, laptop closed, network gone for good) must not leave its
 * session active forever. Every gateway checks its account-less view of active sessions on an
 * interval: one whose last segment is older than the timeout is stopped with reason
 * `recorder_silent`, and finished at once, since nothing more will arrive. Any number of gateways
 * may do this at the same time: stopping is idempotent.
 */
import type { MediaStore } from "@capture/media"
import { type MediaSegment, newCommandId, type SessionId } from "@capture/protocol"
import type { SessionRuntime } from "@capture/session-actor"
import { jetstreamManager } from "@nats-io/jetstream"

export const SILENT_REASON = "recorder_silent"

export interface SilenceWatchOptions {
  /** How long an active session may go without a segment. */
  readonly timeoutMs: number
  readonly log: (message: string) => void
}

export class SilenceWatch {
  private timer: NodeJS.Timeout | undefined
  private checking: Promise<void> = Promise.resolve()

  constructor(
    private readonly runtime: SessionRuntime,
    private readonly media: MediaStore,
    private readonly options: SilenceWatchOptions,
  ) {}

  start(): void {
    const every = Math.max(100, Math.min(5_000, Math.floor(this.options.timeoutMs / 4)))
    this.timer = setInterval(() => {
      this.checking = this.checking.then(() =>
        this.check().then(
          () => undefined,
          (error) =>
            this.options.log(`silence watch: ${error instanceof Error ? error.message : String(error)}`),
        ),
      )
    }, every)
    this.timer.unref()
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    await this.checking
  }

  /** Stops every active session whose recorder has been silent for longer than the timeout. */
  async check(now = Date.now()): Promise<number> {
    const jsm = await jetstreamManager(this.runtime.topology.nc)
    let stopped = 0
    let cursor: string | undefined
    do {
      const page = await this.runtime.readModel.list({
        status: "active",
        limit: 100,
        ...(cursor ? { cursor } : {}),
      })
      for (const session of page.sessions) {
        const last = await jsm.streams
          .getMessage(this.media.topology.stream, { last_by_subj: this.media.topology.subject(session.id) })
          .catch(() => null)
        // Silent since its last segment was stored, or since it became active if none was.
        const lastHeard =
          last === null ? Date.parse(session.updated_at) : Date.parse(last.json<MediaSegment>().stored_at)
        if (now - lastHeard <= this.options.timeoutMs) continue
        await this.silence(session.id)
        stopped++
      }
      cursor = page.next_page ?? undefined
    } while (cursor !== undefined)
    return stopped
  }

  private async silence(sessionId: SessionId): Promise<void> {
    const host = this.runtime.host
    const stopping = await host.execute({
      type: "StopSession",
      command_id: newCommandId(),
      session_id: sessionId,
      reason: SILENT_REASON,
    })
    // Only finish a stop this watch made: a stop someone else asked for waits for its recorder's tail.
    if (stopping._tag !== "Success" || stopping.success.event?.type !== "SessionStopping") return
    await host.execute({ type: "FinishStopping", command_id: newCommandId(), session_id: sessionId })
    this.options.log(
      `session ${sessionId}: no media for ${this.options.timeoutMs} ms, stopped (${SILENT_REASON})`,
    )
  }
}
