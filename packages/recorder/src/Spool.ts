/**
 * The spool: segments on disk until the server has acknowledged them, laid out so that a
 * restarted recorder can pick up where a crashed one stopped.
 *
 * ```
 * <spoolDir>/<session_id>/session.json                   the session as started (channels, status)
 * <spoolDir>/<session_id>/pauses.json                    pauses and resumes the server has yet to answer
 * <spoolDir>/<session_id>/<channel_id>/channel.json       {channel_id, acked_through}
 * <spoolDir>/<session_id>/<channel_id>/run-<first>.json   one ffmpeg run: first index, first-sample time
 * <spoolDir>/<session_id>/<channel_id>/run-<first>.csv    that run's segment list (ffmpeg writes it)
 * <spoolDir>/<session_id>/<channel_id>/<index>.ts         a segment (index: 8 digits)
 * <spoolDir>/<session_id>/<channel_id>/<index>.json       its sidecar: start, duration, size, SHA-256
 * <spoolDir>/<session_id>/<channel_id>/ffmpeg.pid         the channel's running ffmpeg
 * ```
 *
 * JSON files are written to a temporary name and renamed, so a reader sees a whole file or none.
 * A segment is deleted only after `acked_through` has moved past it. (On Windows, `:` in a channel
 * id is written `%3A` in the folder name.) Files survive a crash of the recorder; nothing is
 * fsynced, so a power loss may lose the newest segments.
 */
import { createHash } from "node:crypto"
import { createReadStream } from "node:fs"
import { mkdir, readdir, readFile, rename, rm, stat, unlink, writeFile } from "node:fs/promises"
import { join, sep } from "node:path"
import { ChannelInput } from "@capture/protocol"
import { Result, Schema } from "effect"
import { probeFile } from "./Ffmpeg.js"
import { segmentPattern } from "./FfmpegInputs.js"

const Int = Schema.Int

/** One segment as the spool and the upload know it. */
export const SegmentRecord = Schema.Struct({
  session_id: Schema.String,
  channel_id: Schema.String,
  index: Int,
  /** Wall-clock time of the segment's first sample, epoch ms. */
  start_ms: Int,
  duration_ms: Int,
  bytes: Int,
  /** Hex SHA-256 of the segment file. */
  sha256: Schema.String,
})
export type SegmentRecord = typeof SegmentRecord.Type

/** A channel's upload progress: every index up to `acked_through` is on the server. */
export const ChannelState = Schema.Struct({ channel_id: Schema.String, acked_through: Int })
export type ChannelState = typeof ChannelState.Type

/**
 * One ffmpeg run: its first segment index and the wall-clock time (epoch ms) of its timeline's
 * zero: the first sample, less the encoder's priming for AAC (`timelineLeadMs`).
 * `clock` says where that time came from: the device's own timestamp, or when ffmpeg started
 * producing (synthetic sources).
 */
export const RunMeta = Schema.Struct({
  start_index: Int,
  first_sample_ms: Int,
  clock: Schema.Literals(["device", "process"]),
})
export type RunMeta = typeof RunMeta.Type

/** The session as the recorder started it. `ended`: the server ended it; nothing more is sent. */
export const SessionFile = Schema.Struct({
  session_id: Schema.String,
  base_url: Schema.String,
  status: Schema.Literals(["recording", "ended"]),
  server_status: Schema.optionalKey(Schema.String),
  primary_video_channel_id: Schema.optionalKey(Schema.String),
  /** The channels as sent to `POST /capture/session/start`. */
  channels: Schema.Array(ChannelInput),
})
export type SessionFile = typeof SessionFile.Type

/** A channel's pause or resume for the server, at `at_ms` on the segments' clock. */
export const PauseReport = Schema.Struct({
  action: Schema.Literals(["pause", "resume"]),
  channel_id: Schema.String,
  at_ms: Int,
})
export type PauseReport = typeof PauseReport.Type

/**
 * A session's pauses on their way to the server: `pending`, in the order they happened, until
 * answered; `paused`, the channels the server holds paused once every pending one has arrived.
 */
export const PauseLog = Schema.Struct({
  paused: Schema.Array(Schema.String),
  pending: Schema.Array(PauseReport),
})
export type PauseLog = typeof PauseLog.Type

/** An entry of a run's segment list: `<index>.ts,<start s>,<end s>` on ffmpeg's timeline. */
export interface ListEntry {
  readonly index: number
  readonly startSeconds: number
  readonly endSeconds: number
}

/** The 8-digit name of segment `index`. */
export const indexName = (index: number): string => String(index).padStart(8, "0")

/** The folder name of a channel id. */
export const channelDirName = (channelId: string): string =>
  process.platform === "win32" ? channelId.replaceAll(":", "%3A") : channelId

const decodeJson = async <S extends Schema.Codec<unknown, unknown, never, never>>(
  schema: S,
  path: string,
): Promise<S["Type"] | undefined> => {
  let text: string
  try {
    text = await readFile(path, "utf8")
  } catch {
    return undefined
  }
  try {
    const result = Schema.decodeUnknownResult(schema)(JSON.parse(text), { onExcessProperty: "ignore" })
    return Result.isSuccess(result) ? result.success : undefined
  } catch {
    return undefined
  }
}

/** Writes `value` as JSON to `path` through a temporary file and a rename. */
export const writeJsonAtomic = async (path: string, value: unknown): Promise<void> => {
  const temporary = `${path}.${process.pid}.tmp`
  await writeFile(temporary, `${JSON.stringify(value)}\n`)
  await rename(temporary, path)
}

const unlinkQuietly = async (path: string): Promise<void> => {
  try {
    await unlink(path)
  } catch {
    // already gone
  }
}

/** Parses a segment list; a last line without its newline is still being written and is skipped. */
export const parseSegmentList = (text: string): ReadonlyArray<ListEntry> => {
  const complete = text.endsWith("\n") ? text : text.slice(0, text.lastIndexOf("\n") + 1)
  const entries: ListEntry[] = []
  for (const line of complete.split("\n")) {
    const match = /^"?(?:.*[\\/])?(\d{8,})\.ts"?,(-?[\d.]+),(-?[\d.]+)\s*$/.exec(line)
    if (match === null) continue
    entries.push({ index: Number(match[1]), startSeconds: Number(match[2]), endSeconds: Number(match[3]) })
  }
  return entries
}

/** Size and hex SHA-256 of a file, streamed. */
export const hashFile = async (
  path: string,
): Promise<{ readonly bytes: number; readonly sha256: string }> => {
  const hash = createHash("sha256")
  let bytes = 0
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer)
    bytes += (chunk as Buffer).length
  }
  return { bytes, sha256: hash.digest("hex") }
}

/** One session's folder in the spool. */
export class SessionSpool {
  /** The session's folder. */
  readonly dir: string

  constructor(
    readonly root: string,
    readonly sessionId: string,
  ) {
    this.dir = join(root, sessionId)
  }

  /** The session file, if this session has a spool. */
  readSession(): Promise<SessionFile | undefined> {
    return decodeJson(SessionFile, join(this.dir, "session.json"))
  }

  /** Writes the session file (creating the folder). */
  async writeSession(file: SessionFile): Promise<void> {
    await mkdir(this.dir, { recursive: true })
    await writeJsonAtomic(join(this.dir, "session.json"), file)
  }

  /** The pauses not yet answered by the server, and the channels it holds paused (none: no file). */
  async readPauses(): Promise<PauseLog> {
    return (await decodeJson(PauseLog, join(this.dir, "pauses.json"))) ?? { paused: [], pending: [] }
  }

  /** Writes the pause log (creating the folder). */
  async writePauses(log: PauseLog): Promise<void> {
    await mkdir(this.dir, { recursive: true })
    await writeJsonAtomic(join(this.dir, "pauses.json"), log)
  }

  /** The ids of the channels that have a folder here. */
  async channelIds(): Promise<ReadonlyArray<string>> {
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch {
      return []
    }
    const ids: string[] = []
    for (const name of names.sort()) {
      const state = await decodeJson(ChannelState, join(this.dir, name, "channel.json"))
      if (state !== undefined) ids.push(state.channel_id)
    }
    return ids
  }

  /** A channel's part of the spool. */
  channel(channelId: string): ChannelSpool {
    return new ChannelSpool(this.sessionId, channelId, join(this.dir, channelDirName(channelId)))
  }

  /** Deletes the session's folder. */
  remove(): Promise<void> {
    return rm(this.dir, { recursive: true, force: true })
  }
}

/** One channel's folder: its segments, sidecars, runs and upload progress. */
export class ChannelSpool {
  constructor(
    readonly sessionId: string,
    readonly channelId: string,
    /** The channel's folder. */
    readonly dir: string,
  ) {}

  /** The ffmpeg output pattern for this folder. */
  get pattern(): string {
    return segmentPattern(this.dir, sep)
  }
  segmentPath(index: number): string {
    return join(this.dir, `${indexName(index)}.ts`)
  }
  sidecarPath(index: number): string {
    return join(this.dir, `${indexName(index)}.json`)
  }
  runListPath(startIndex: number): string {
    return join(this.dir, `run-${indexName(startIndex)}.csv`)
  }
  runMetaPath(startIndex: number): string {
    return join(this.dir, `run-${indexName(startIndex)}.json`)
  }
  get pidPath(): string {
    return join(this.dir, "ffmpeg.pid")
  }

  /** Creates the folder and its `channel.json` when missing. */
  async ensure(): Promise<void> {
    await mkdir(this.dir, { recursive: true })
    if ((await decodeJson(ChannelState, join(this.dir, "channel.json"))) === undefined) {
      await writeJsonAtomic(join(this.dir, "channel.json"), { channel_id: this.channelId, acked_through: -1 })
    }
  }

  /** The highest acknowledged index (-1: none). */
  async ackedThrough(): Promise<number> {
    return (await decodeJson(ChannelState, join(this.dir, "channel.json")))?.acked_through ?? -1
  }

  /** Records that the server has segment `index`, then deletes its files. */
  async ack(index: number): Promise<void> {
    await writeJsonAtomic(join(this.dir, "channel.json"), {
      channel_id: this.channelId,
      acked_through: index,
    })
    await unlinkQuietly(this.segmentPath(index))
    await unlinkQuietly(this.sidecarPath(index))
  }

  /** Records a run's first-sample time. */
  writeRun(meta: RunMeta): Promise<void> {
    return writeJsonAtomic(this.runMetaPath(meta.start_index), meta)
  }

  /** The runs recorded here, by first index. */
  async runs(): Promise<ReadonlyArray<RunMeta>> {
    const names = await this.names()
    const runs: RunMeta[] = []
    for (const name of names) {
      if (!/^run-\d{8,}\.json$/.test(name)) continue
      const run = await decodeJson(RunMeta, join(this.dir, name))
      if (run !== undefined) runs.push(run)
    }
    return runs.sort((a, b) => a.start_index - b.start_index)
  }

  /** A run's segment list as written so far. */
  async readList(startIndex: number): Promise<ReadonlyArray<ListEntry>> {
    try {
      return parseSegmentList(await readFile(this.runListPath(startIndex), "utf8"))
    } catch {
      return []
    }
  }

  /** The record of a finished segment: its file's size and hash, with the given timing. */
  async describe(index: number, startMs: number, durationMs: number): Promise<SegmentRecord> {
    const { bytes, sha256 } = await hashFile(this.segmentPath(index))
    return {
      session_id: this.sessionId,
      channel_id: this.channelId,
      index,
      start_ms: Math.round(startMs),
      duration_ms: Math.max(0, Math.round(durationMs)),
      bytes,
      sha256,
    }
  }

  /** Writes a segment's sidecar, making it ready for upload. */
  writeSidecar(record: SegmentRecord): Promise<void> {
    return writeJsonAtomic(this.sidecarPath(record.index), record)
  }

  /** The record of a listed segment of `run`. */
  recordOf(run: RunMeta, entry: ListEntry): Promise<SegmentRecord> {
    return this.describe(
      entry.index,
      run.first_sample_ms + entry.startSeconds * 1_000,
      (entry.endSeconds - entry.startSeconds) * 1_000,
    )
  }

  /**
   * A segment ffmpeg did not list (it was cut short: ffmpeg killed, crashed, or the recorder died
   * with it). MPEG-TS stays decodable up to the cut, so it is kept when ffprobe reads a duration:
   * it starts where the run's previous segment ended. Otherwise it is deleted; since only a run's
   * last segment can be cut, indexes stay contiguous.
   */
  async salvage(
    index: number,
    run: RunMeta,
    list: ReadonlyArray<ListEntry>,
    ffprobePath: string,
  ): Promise<SegmentRecord | undefined> {
    const probe = await probeFile(ffprobePath, this.segmentPath(index), "mpegts")
    if (probe === undefined || probe.durationSeconds <= 0 || probe.streams.length === 0) {
      await unlinkQuietly(this.segmentPath(index))
      return undefined
    }
    const previous = list.find((entry) => entry.index === index - 1)
    const offsetSeconds = index === run.start_index || previous === undefined ? 0 : previous.endSeconds
    return this.describe(index, run.first_sample_ms + offsetSeconds * 1_000, probe.durationSeconds * 1_000)
  }

  /**
   * Brings the folder to a consistent state after a restart and returns what is left to upload:
   * acknowledged leftovers are deleted, segments without a sidecar get one (from their run's list,
   * or salvaged), and the next index to record is the one after everything present.
   */
  async recover(ffprobePath: string): Promise<{
    readonly records: ReadonlyArray<SegmentRecord>
    readonly ackedThrough: number
    readonly nextIndex: number
  }> {
    await this.ensure()
    const ackedThrough = await this.ackedThrough()
    const names = await this.names()
    const segments = names
      .filter((name) => /^\d{8,}\.ts$/.test(name))
      .map((name) => Number(name.slice(0, -3)))
    const sidecars = new Set(
      names.filter((name) => /^\d{8,}\.json$/.test(name)).map((name) => Number(name.slice(0, -5))),
    )
    const runs = await this.runs()
    const lists = new Map<number, ReadonlyArray<ListEntry>>()
    const listOf = async (run: RunMeta) => {
      let list = lists.get(run.start_index)
      if (list === undefined) {
        list = await this.readList(run.start_index)
        lists.set(run.start_index, list)
      }
      return list
    }

    const records: SegmentRecord[] = []
    for (const index of segments.sort((a, b) => a - b)) {
      if (index <= ackedThrough) {
        await unlinkQuietly(this.segmentPath(index))
        await unlinkQuietly(this.sidecarPath(index))
        continue
      }
      const existing = sidecars.has(index)
        ? await decodeJson(SegmentRecord, this.sidecarPath(index))
        : undefined
      if (existing !== undefined) {
        records.push(existing)
        continue
      }
      const run = runs.filter((candidate) => candidate.start_index <= index).at(-1)
      if (run === undefined) {
        await unlinkQuietly(this.segmentPath(index))
        continue
      }
      const list = await listOf(run)
      const entry = list.find((candidate) => candidate.index === index)
      const record =
        entry === undefined
          ? await this.salvage(index, run, list, ffprobePath)
          : await this.recordOf(run, entry)
      if (record === undefined) continue
      await this.writeSidecar(record)
      records.push(record)
    }
    const present = new Set(records.map((record) => record.index))
    for (const index of sidecars) if (!present.has(index)) await unlinkQuietly(this.sidecarPath(index))
    const highest = Math.max(ackedThrough, ...records.map((record) => record.index))
    return { records, ackedThrough, nextIndex: highest + 1 }
  }

  /** Whether segment `index`'s file exists. */
  async hasSegment(index: number): Promise<boolean> {
    try {
      return (await stat(this.segmentPath(index))).isFile()
    } catch {
      return false
    }
  }

  private async names(): Promise<ReadonlyArray<string>> {
    try {
      return await readdir(this.dir)
    } catch {
      return []
    }
  }
}
