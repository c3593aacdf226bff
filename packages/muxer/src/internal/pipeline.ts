/**
 * The export pipeline of one muxer instance: pieces made as segment records arrive
 * (`pieces.ts`), and an export assembled from whatever exists at the end (`assemble.ts`).
 */

import type { FfmpegTools } from "@capture/binaries"
import type { MediaStore } from "@capture/media"
import type { MediaSegment, TimeSpan } from "@capture/protocol"
import { type AssembleResult, assembleExport } from "./assemble.js"
import type { MixOptions, RemuxMode } from "./media.js"
import { Pieces, type SessionChannels } from "./pieces.js"
import type { ExportJob, MuxerStore } from "./store.js"

export type { AssembleResult } from "./assemble.js"
export { defaultVideoChannel, type SessionChannels } from "./pieces.js"

export class Pipeline {
  private readonly pieces: Pieces

  constructor(
    tools: FfmpegTools,
    media: MediaStore,
    private readonly store: MuxerStore,
    concurrency: number,
    log: (message: string) => void,
    remux: RemuxMode = "native",
    mix: MixOptions = { mode: "native", faad: undefined },
    chunkParts?: number,
  ) {
    this.pieces = new Pieces(tools, media, store, concurrency, log, remux, mix, chunkParts)
  }

  /** Ends the long-lived processes (the mix encoders). */
  close(): void {
    this.pieces.close()
  }

  /** Pieces this instance made (the ones it found stored are not counted). */
  get piecesMade(): number {
    return this.pieces.piecesMade
  }

  /** Incremental work for one arriving record: its raw piece, then any settled mix windows. */
  onRecord(record: MediaSegment, session: SessionChannels): Promise<void> {
    return this.pieces.onRecord(record, session)
  }

  /** Forgets a session's cached work (it ended). */
  forget(sessionId: string): void {
    this.pieces.forget(sessionId)
  }

  /**
   * Builds an export from everything stored for the session: raw assets of every stored channel,
   * the muxed video of `videoChannelId` (or audio only) with `pausedSpans` cut out of it, and the
   * manifest under the job's video id.
   */
  assemble(
    sessionId: string,
    session: SessionChannels,
    videoChannelId: string | null,
    job: ExportJob,
    pausedSpans: ReadonlyArray<TimeSpan> = [],
  ): Promise<AssembleResult> {
    return assembleExport(this.pieces, this.store, sessionId, session, videoChannelId, job, pausedSpans)
  }
}
