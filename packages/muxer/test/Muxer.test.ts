import { randomBytes } from "node:crypto"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ExportBucket, MediaStore, manifestName, RangeNotSatisfiable, sha256Hex } from "@capture/media"
import {
  assetIdsOf,
  type ExportMetadata,
  rawAssetId,
  type SessionEvent,
  type SessionId,
  type VideoId,
} from "@capture/protocol"
import { type SessionRuntime, startSessionRuntime, toCaptureSession } from "@capture/session-actor"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Muxer } from "../src/index.js"
import {
  beeper,
  beeps,
  type ChannelMedia,
  display,
  flashes,
  probe,
  record,
  segmentInput,
  streamSpan,
  toneLevel,
  upload,
} from "./fixtures.js"
import { cmd, drained, history, run, startSession, stopSession, waitForHistory } from "./session.js"

const PUBLIC = "http://127.0.0.1:8080"

type Completed = Extract<SessionEvent, { type: "ExportCompleted" }>
const completedFor = (events: SessionEvent[], channel: string | null): Completed[] =>
  events.filter((e): e is Completed => e.type === "ExportCompleted" && e.data.video_channel_id === channel)

/** Pairs each beep with the nearest flash; returns the offsets (s) of the first and last pair. */
const syncOffsets = (flashTimes: number[], beepTimes: number[]): number[] => {
  const offsets = beepTimes.map((b) => {
    const nearest = flashTimes.reduce((best, f) => (Math.abs(f - b) < Math.abs(best - b) ? f : best))
    return b - nearest
  })
  return [offsets[0] as number, offsets.at(-1) as number]
}

// Generous: ffmpeg, ffprobe and the detectors are slow on a loaded machine.
describe("Muxer", { timeout: 120_000 }, () => {
  let nats: NatsServerHandle
  let nc: NatsConnection
  let jsm: JetStreamManager
  let runtime: SessionRuntime
  let media: MediaStore
  let muxer: Muxer
  let dir: string
  let screen1: ChannelMedia
  let screen2: ChannelMedia
  let mic: ChannelMedia
  let system: ChannelMedia
  const logs: string[] = []

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "muxer-test-"))
    // One wall clock for every channel, on a whole second so flashes and beeps fall on seconds.
    const wall = Math.floor(Date.now() / 1000) * 1000 - 60_000
    ;[screen1, screen2, mic, system] = await Promise.all([
      record(dir, display("display:1", { offsetMs: 0, seconds: 8 }), wall),
      record(dir, display("display:2", { offsetMs: 200, seconds: 8, pattern: "testsrc" }), wall),
      record(dir, beeper("mic:default", { offsetMs: 500, seconds: 7.5, hz: 440 }), wall),
      record(dir, beeper("system_audio:default", { offsetMs: -300, seconds: 8.3, hz: 1000 }), wall),
    ])
    nats = await startNatsServer()
    nc = await connect({ servers: nats.url })
    jsm = await jetstreamManager(nc)
    media = await MediaStore.open(nc)
    runtime = await startSessionRuntime(nc, {
      workers: true,
      reactor: { segments: media, silenceTimeoutMs: 600_000 },
    })
    muxer = await Muxer.start(nc, runtime, {
      mediaStore: media,
      publicUrl: PUBLIC,
      log: (m) => logs.push(m),
      // Manifests of a few parts a chunk, so an 8 s recording has several.
      manifestChunkParts: 2,
    })
  })
  afterAll(async () => {
    await muxer?.stop()
    await runtime?.stop()
    await nc?.close()
    await nats?.stop()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  const file = async (videoId: string, name: string): Promise<string> => {
    const opened = await muxer.exportStore.open(videoId, name)
    if (opened === undefined) throw new Error(`${videoId}/${name} is not served`)
    const path = join(dir, `${videoId}-${name.replace(/\//g, "_")}`)
    await writeFile(path, await opened.bytes())
    return path
  }

  const metadataOf = async (videoId: string): Promise<ExportMetadata> => {
    const metadata = await muxer.exportStore.get(videoId)
    if (metadata === undefined) throw new Error(`no metadata for ${videoId}`)
    return metadata
  }

  let sessionId: SessionId
  let videoId: string

  // Generous: ffprobe and the detectors run several times, slow on a loaded machine.
  it("exports once, with both tones mixed in sync with the video", { timeout: 120_000 }, async () => {
    sessionId = await startSession(
      runtime,
      [
        { channel_id: "display:1" },
        { channel_id: "display:2" },
        { channel_id: "mic:default" },
        { channel_id: "system_audio:default" },
      ],
      "display:1",
    )
    const channels = [screen1, screen2, mic, system]
    // While the session runs: everything but each channel's last segment, worked on as it comes.
    await upload(media, sessionId, channels, (s, c) => s.index < c.segments.length - 1)
    await drained(jsm, media.topology.stream, "capture-muxer-media")
    await upload(media, sessionId, channels, (s, c) => s.index === c.segments.length - 1)
    await stopSession(runtime, sessionId)
    const events = await waitForHistory(runtime, sessionId, (es) => completedFor(es, "display:1").length > 0)
    const stopped = events.find((e) => e.type === "SessionStopped") as SessionEvent
    const completed = completedFor(events, "display:1")[0] as Completed
    const latency = Date.parse(completed.time) - Date.parse(stopped.time)
    // How soon is bench:export's to measure (a timed assertion fails on a loaded machine, not on a slow muxer).
    console.log(`[muxer] stopped → exported: ${latency} ms`)
    expect(latency).toBeGreaterThanOrEqual(0)
    videoId = completed.data.video_id
    expect(completed.data.stream_url).toBe(`${PUBLIC}/media/${videoId}/index.m3u8`)
    expect(completed.data.player_url).toBe(`${PUBLIC}/player/${videoId}`)
    // Every stored channel's raw asset is named, by an id derived from the video id and the channel.
    expect(completed.data.asset_ids).toEqual({
      "display:1": rawAssetId(videoId as VideoId, "display:1", "video"),
      "display:2": rawAssetId(videoId as VideoId, "display:2", "video"),
      "mic:default": rawAssetId(videoId as VideoId, "mic:default", "audio"),
      "system_audio:default": rawAssetId(videoId as VideoId, "system_audio:default", "audio"),
    })
    const view = toCaptureSession((await runtime.host.load(sessionId)).state)
    expect(view?.rtstreams.map((r) => [r.name, r.exported_asset_id])).toEqual(
      Object.entries(completed.data.asset_ids ?? {}),
    )

    const mp4 = await file(videoId, "video.mp4")
    const probed = await probe(mp4)
    expect(probed.streams.map((s) => s.codec_name).sort()).toEqual(["aac", "h264"])
    expect(Number(probed.format.duration)).toBeGreaterThan(7.9)
    expect(Number(probed.format.duration)).toBeLessThan(8.3)
    const video = await streamSpan(mp4, "v")
    const audio = await streamSpan(mp4, "a")
    expect(Math.abs(video.start - audio.start)).toBeLessThan(0.03)
    expect(Math.abs(video.end - audio.end)).toBeLessThan(0.05)

    expect(await toneLevel(mp4, 440)).toBeGreaterThan(-20)
    expect(await toneLevel(mp4, 1000)).toBeGreaterThan(-20)
    const flashTimes = await flashes(mp4)
    expect(flashTimes).toHaveLength(8)
    const micBeeps = await beeps(mp4, 440)
    const systemBeeps = await beeps(mp4, 1000)
    // The mic starts at 0.5 s (beeps from 1 s), system audio 0.3 s before the display.
    expect(micBeeps).toHaveLength(7)
    expect(systemBeeps).toHaveLength(8)
    const offsets = [...syncOffsets(flashTimes, micBeeps), ...syncOffsets(flashTimes, systemBeeps)]
    console.log(
      `[muxer] beep − flash at start/end (s): mic ${offsets.slice(0, 2)}, system ${offsets.slice(2)}`,
    )
    for (const offset of offsets) expect(Math.abs(offset)).toBeLessThanOrEqual(0.04)

    // Its manifest is stored in chunks, most of them made while the session ran: the stop wrote the tail.
    const head = JSON.parse(
      new TextDecoder().decode(await (await ExportBucket.open(nc)).getObject(manifestName(videoId))),
    ) as { video: { chunks: unknown[] }; raw: Array<{ chunks: unknown[] }> }
    const chunks = [head.video, ...head.raw].reduce((n, f) => n + f.chunks.length, 0)
    const atStop = muxer.completed.find((c) => c.videoId === videoId)?.chunksWritten ?? -1
    console.log(`[muxer] manifest chunks: ${chunks}, written at the stop: ${atStop}`)
    expect(head.video.chunks.length).toBeGreaterThan(2)
    expect(atStop).toBeGreaterThanOrEqual(1)
    expect(atStop).toBeLessThan(chunks / 2)

    // `exported` once, and a second request only reports the status.
    await run(runtime, cmd("RequestExport", sessionId, {}))
    await new Promise((resolve) => setTimeout(resolve, 500))
    const after = await waitForHistory(runtime, sessionId, () => true)
    expect(completedFor(after, "display:1")).toHaveLength(1)
    expect(after.filter((e) => e.type === "ExportCompleted")).toHaveLength(1)
  })

  it("serves HLS whose segments are the MP4, raw assets per channel, and metadata", async () => {
    const metadata = await metadataOf(videoId)
    expect(metadata).toMatchObject({
      video_id: videoId,
      session_id: sessionId,
      video_channel_id: "display:1",
    })
    expect(metadata.start_ms).toBe(screen1.segments[0]?.startMs)
    expect(metadata.audio_channel_ids).toEqual(["mic:default", "system_audio:default"])
    expect(metadata.gaps).toEqual([])
    const playlist = await (await muxer.exportStore.open(videoId, "index.m3u8"))?.bytes()
    const text = Buffer.from(playlist ?? new Uint8Array()).toString()
    const segments = text.split("\n").filter((l) => l.startsWith("seg/"))
    expect(segments).toHaveLength(4)
    expect(text).toContain('#EXT-X-MAP:URI="init.mp4"')
    const parts = await Promise.all(
      ["init.mp4", ...segments].map(async (f) => (await muxer.exportStore.open(videoId, f))?.bytes()),
    )
    const whole = await (await muxer.exportStore.open(videoId, "video.mp4"))?.bytes()
    expect(Buffer.concat(parts as Uint8Array[]).equals(Buffer.from(whole as Uint8Array))).toBe(true)
    const ranged = await muxer.exportStore.open(videoId, "video.mp4", { start: 1000, end: 300_000 })
    expect(
      Buffer.from((await ranged?.bytes()) as Uint8Array).equals(
        Buffer.from(whole as Uint8Array).subarray(1000, 300_001),
      ),
    ).toBe(true)

    await expect(
      muxer.exportStore.open(videoId, "video.mp4", { start: whole?.length ?? 0 }),
    ).rejects.toBeInstanceOf(RangeNotSatisfiable)
    expect(await muxer.exportStore.open(videoId, "seg/99.m4s")).toBeUndefined()
    expect(await muxer.exportStore.open(videoId, "../manifest.json")).toBeUndefined()
    expect(await muxer.exportStore.get("m-unknown")).toBeUndefined()
    expect(await muxer.exportStore.files(videoId)).toContain("raw/mic_default.m4a")

    expect(metadata.channels.map((c) => [c.channel_id, c.file])).toEqual([
      ["display:1", "raw/display_1.mp4"],
      ["display:2", "raw/display_2.mp4"],
      ["mic:default", "raw/mic_default.m4a"],
      ["system_audio:default", "raw/system_audio_default.m4a"],
    ])
    // The metadata names the same asset ids as the completion, and each id leads back to its file.
    const completion = completedFor(await history(runtime, sessionId), "display:1")[0] as Completed
    expect(assetIdsOf(metadata)).toEqual(completion.data.asset_ids)
    for (const asset of metadata.channels) {
      expect(asset.asset_id.startsWith(asset.type === "video" ? "m-" : "a-")).toBe(true)
      const found = await muxer.exportStore.asset(asset.asset_id)
      expect(found?.asset).toEqual(asset)
      expect(found?.metadata.video_id).toBe(videoId)
    }
    expect(await muxer.exportStore.asset(rawAssetId(videoId as VideoId, "camera:x", "video"))).toBeUndefined()
    expect(await muxer.exportStore.asset(videoId)).toBeUndefined()
    expect(await muxer.exportStore.asset("rts-1")).toBeUndefined()
    const expected: Record<string, { codec: string; seconds: number; start: number | undefined }> = {
      "display:1": { codec: "h264", seconds: 8, start: screen1.segments[0]?.startMs },
      "display:2": { codec: "h264", seconds: 8, start: screen2.segments[0]?.startMs },
      "mic:default": { codec: "aac", seconds: 7.5, start: mic.segments[0]?.startMs },
      "system_audio:default": { codec: "aac", seconds: 8.3, start: system.segments[0]?.startMs },
    }
    for (const asset of metadata.channels) {
      const want = expected[asset.channel_id] as (typeof expected)[string]
      const probed = await probe(await file(videoId, asset.file))
      expect(probed.streams.map((s) => s.codec_name)).toEqual([want.codec])
      expect(Math.abs(Number(probed.format.duration) - want.seconds)).toBeLessThan(0.15)
      expect(asset.start_ms).toBe(want.start)
      expect(asset.segments).toBe(channelOf(asset.channel_id).segments.length)
    }
  })

  const channelOf = (id: string) =>
    [screen1, screen2, mic, system].find((c) => c.channelId === id) as ChannelMedia

  it("exports another display on request, with the same audio mix in sync", async () => {
    await run(runtime, cmd("RequestExport", sessionId, { video_channel_id: "display:2" as never }))
    const events = await waitForHistory(runtime, sessionId, (es) => completedFor(es, "display:2").length > 0)
    const second = completedFor(events, "display:2")[0] as Completed
    expect(second.data.video_id).not.toBe(videoId)
    const metadata = await metadataOf(second.data.video_id)
    expect(metadata.video_channel_id).toBe("display:2")
    expect(metadata.start_ms).toBe(screen2.segments[0]?.startMs)
    const mp4 = await file(second.data.video_id, "video.mp4")
    const flashTimes = await flashes(mp4)
    expect(flashTimes.length).toBeGreaterThanOrEqual(7)
    for (const hz of [440, 1000]) {
      const offsets = syncOffsets(flashTimes, await beeps(mp4, hz))
      for (const offset of offsets) expect(Math.abs(offset)).toBeLessThanOrEqual(0.04)
    }
    expect(completedFor(events, "display:1")).toHaveLength(1)
    // Its raw assets are its own; the rtstreams keep the first export's.
    const first = completedFor(events, "display:1")[0] as Completed
    expect(Object.keys(second.data.asset_ids ?? {}).sort()).toEqual(
      Object.keys(first.data.asset_ids ?? {}).sort(),
    )
    for (const [channel, assetId] of Object.entries(second.data.asset_ids ?? {})) {
      expect(assetId).not.toBe(first.data.asset_ids?.[channel])
      expect((await muxer.exportStore.asset(assetId))?.metadata.video_id).toBe(second.data.video_id)
    }
    const view = toCaptureSession((await runtime.host.load(sessionId)).state)
    expect(view?.rtstreams.map((r) => [r.name, r.exported_asset_id])).toEqual(
      Object.entries(first.data.asset_ids ?? {}),
    )
  })

  it("fills a missing and a corrupt segment with silence and black, and lists them", async () => {
    const id = await startSession(runtime, [{ channel_id: "display:1" }, { channel_id: "mic:default" }])
    await upload(
      media,
      id,
      [screen1, mic],
      (s, c) => !(c === mic && s.index === 1) && !(c === screen1 && s.index === 2),
    )
    const garbage = new Uint8Array(randomBytes(50_000))
    const corrupt = screen1.segments[2] as ChannelMedia["segments"][number]
    await media.put(segmentInput(id, screen1, corrupt, sha256Hex(garbage)), garbage)
    await stopSession(runtime, id)
    const events = await waitForHistory(runtime, id, (es) => completedFor(es, "display:1").length > 0)
    const done = completedFor(events, "display:1")[0] as Completed
    const metadata = await metadataOf(done.data.video_id)
    expect(metadata.gaps.map((g) => [g.channel_id, g.reason, g.segment_indexes])).toEqual([
      ["display:1", "corrupt", [2]],
      ["mic:default", "missing", [1]],
    ])
    const [videoGap, micGap] = metadata.gaps
    expect(videoGap?.start_ms).toBe((screen1.segments[1]?.startMs ?? 0) + 2000)
    expect(Math.abs((videoGap?.duration_ms ?? 0) - 2000)).toBeLessThan(50)
    expect(Math.abs((micGap?.duration_ms ?? 0) - (mic.segments[1]?.durationMs ?? 0))).toBeLessThan(50)
    const mp4 = await file(done.data.video_id, "video.mp4")
    const video = await streamSpan(mp4, "v")
    const audio = await streamSpan(mp4, "a")
    expect(video.end - video.start).toBeGreaterThan(7.9)
    expect(Math.abs(video.end - audio.end)).toBeLessThan(0.05)
    // Flashes stop during the black gap; the beeps that remain are still in sync.
    const flashTimes = await flashes(mp4)
    expect(flashTimes).toHaveLength(6)
    for (const offset of syncOffsets(flashTimes, await beeps(mp4, 440)))
      expect(Math.abs(offset)).toBeLessThanOrEqual(0.04)
  })

  it("fails an export when no stored channel has a segment, with the reason", async () => {
    const id = await startSession(runtime, [
      { channel_id: "display:1", store: false },
      { channel_id: "mic:default" },
    ])
    await upload(media, id, [screen1])
    await stopSession(runtime, id)
    const events = await waitForHistory(runtime, id, (es) => es.some((e) => e.type === "ExportFailed"))
    const failed = events.find((e) => e.type === "ExportFailed")
    expect(failed?.data).toMatchObject({ video_channel_id: null, error: { code: "no_media" } })
    const { state } = await runtime.host.load(id)
    expect(state.value).toBe("failed")
    expect(state.context.error?.message).toMatch(/no stored channel/)
    // The store: false display's segments were dropped once the session stopped.
    expect(await media.read(id, "display:1", 0)).toBeUndefined()
  })

  describe("paused time", () => {
    // One wall clock again; the recorder paused every channel from 3.5 s to 6.5 s: two ffmpeg
    // runs per channel, indexes running on, nothing recorded in between. (Off the whole second,
    // so no beep starts on a run's very first sample, which the AAC encoder blurs.)
    let wall: number
    let screenPaused: ChannelMedia
    let micPaused: ChannelMedia
    let micThrough: ChannelMedia
    const PAUSE = { from: 3_500, to: 6_500 }

    /** A channel recorded in two runs, the second at the next index, as after a resume. */
    const twoRuns = (first: ChannelMedia, second: ChannelMedia): ChannelMedia => ({
      channelId: first.channelId,
      segments: [
        ...first.segments,
        ...second.segments.map((s, i) => ({ ...s, index: first.segments.length + i })),
      ],
    })

    beforeAll(async () => {
      wall = Math.floor(Date.now() / 1000) * 1000 - 120_000
      const before = PAUSE.from / 1000
      const after = 10 - PAUSE.to / 1000
      const [screenA, screenB, micA, micB] = await Promise.all([
        record(join(dir, "paused-a"), display("display:1", { offsetMs: 0, seconds: before }), wall),
        record(join(dir, "paused-b"), display("display:1", { offsetMs: PAUSE.to, seconds: after }), wall),
        record(join(dir, "paused-a"), beeper("mic:default", { offsetMs: 0, seconds: before, hz: 440 }), wall),
        record(
          join(dir, "paused-b"),
          beeper("mic:default", { offsetMs: PAUSE.to, seconds: after, hz: 440 }),
          wall,
        ),
      ])
      screenPaused = twoRuns(screenA as ChannelMedia, screenB as ChannelMedia)
      micPaused = twoRuns(micA as ChannelMedia, micB as ChannelMedia)
      micThrough = await record(
        join(dir, "through"),
        beeper("mic:default", { offsetMs: 0, seconds: 10, hz: 440 }),
        wall,
      )
    })

    /** Starts a session of `channels`, pauses `paused` (all when absent) over PAUSE, uploads, stops. */
    const pausedSession = async (
      channels: ReadonlyArray<ChannelMedia>,
      paused?: ReadonlyArray<string>,
    ): Promise<{ id: SessionId; video: Completed }> => {
      const id = await startSession(
        runtime,
        channels.map((c) => ({ channel_id: c.channelId })),
      )
      const named = paused === undefined ? {} : { channel_ids: paused as never }
      await run(runtime, cmd("PauseChannels", id, { ...named, at_ms: wall + PAUSE.from }))
      await run(runtime, cmd("ResumeChannels", id, { ...named, at_ms: wall + PAUSE.to }))
      await upload(media, id, channels)
      await stopSession(runtime, id)
      // Windows after a cut are mixed at the export: allow for a loaded machine.
      const events = await waitForHistory(
        runtime,
        id,
        (es) => es.some((e) => e.type === "ExportCompleted" || e.type === "ExportFailed"),
        90_000,
      )
      const video = events.find((e): e is Completed => e.type === "ExportCompleted")
      if (video === undefined) throw new Error(`export of ${id} failed: ${JSON.stringify(events.at(-1))}`)
      return { id, video }
    }

    /** Every beep has a flash within 40 ms (before and after a cut alike); returns the worst. */
    const expectInSync = (flashTimes: number[], beepTimes: number[]): number => {
      let worst = 0
      for (const beep of beepTimes) {
        const nearest = Math.min(...flashTimes.map((f) => Math.abs(f - beep)))
        expect(nearest, `beep at ${beep} s vs flashes ${flashTimes}`).toBeLessThanOrEqual(0.04)
        worst = Math.max(worst, nearest)
      }
      return worst
    }

    it("leaves the time when every channel was paused out of the muxed video, in sync on both sides, and says so", async () => {
      const { id, video } = await pausedSession([screenPaused, micPaused])
      const requested = (await history(runtime, id)).find((e) => e.type === "ExportRequested")
      const spans = [{ start_ms: wall + PAUSE.from, end_ms: wall + PAUSE.to }]
      expect(requested?.data).toMatchObject({ paused_spans: spans })

      const mp4 = await file(video.data.video_id, "video.mp4")
      const duration = Number((await probe(mp4)).format.duration)
      expect(duration).toBeGreaterThan(6.9)
      expect(duration).toBeLessThan(7.3)
      const picture = await streamSpan(mp4, "v")
      const sound = await streamSpan(mp4, "a")
      expect(Math.abs(picture.start - sound.start)).toBeLessThan(0.03)
      expect(Math.abs(picture.end - sound.end)).toBeLessThan(0.05)
      // Flashes and beeps on each second recorded (0–3, then 7–9): one a second, no hole.
      const flashTimes = await flashes(mp4)
      const beepTimes = await beeps(mp4, 440)
      expect(flashTimes).toHaveLength(7)
      expect(beepTimes).toHaveLength(7)
      for (const [i, t] of flashTimes.entries()) expect(Math.abs(t - i)).toBeLessThan(0.06)
      const worst = expectInSync(flashTimes, beepTimes)
      console.log(
        `[muxer] 3 s paused: ${duration.toFixed(3)} s muxed, |beep − flash| ≤ ${worst.toFixed(3)} s`,
      )

      const metadata = await metadataOf(video.data.video_id)
      expect(metadata.paused_spans).toEqual(spans)
      expect(Math.abs((metadata.paused_ms_removed ?? 0) - 3_000)).toBeLessThan(60)
      expect(Math.abs(metadata.duration_ms - 7_000)).toBeLessThan(150)
      expect(metadata.start_ms).toBe(wall)
      // The HLS playlist is the same 7 s.
      const playlist = await (await muxer.exportStore.open(video.data.video_id, "index.m3u8"))?.bytes()
      const listed = Buffer.from(playlist ?? new Uint8Array())
        .toString()
        .split("\n")
        .filter((l) => l.startsWith("#EXTINF:"))
        .reduce((sum, l) => sum + Number.parseFloat(l.slice("#EXTINF:".length)), 0)
      expect(Math.abs(listed - duration)).toBeLessThan(0.1)
      // Raw assets keep their own timeline: the pause is a black or silent gap there.
      for (const asset of metadata.channels) {
        const seconds = Number((await probe(await file(video.data.video_id, asset.file))).format.duration)
        expect(Math.abs(seconds - 10), asset.channel_id).toBeLessThan(0.2)
        expect(
          asset.gaps.map((g) => Math.round(g.duration_ms / 100) / 10),
          asset.channel_id,
        ).toEqual([3])
      }
    }, 180_000)

    it("keeps a channel paused alone in its place, black while the microphone goes on", async () => {
      const { video } = await pausedSession([screenPaused, micThrough], ["display:1"])
      const metadata = await metadataOf(video.data.video_id)
      expect(metadata.paused_spans).toEqual([])
      expect(metadata.paused_ms_removed).toBe(0)
      const mp4 = await file(video.data.video_id, "video.mp4")
      expect(Number((await probe(mp4)).format.duration)).toBeGreaterThan(9.9)
      const flashTimes = await flashes(mp4)
      expect(flashTimes.map(Math.round)).toEqual([0, 1, 2, 3, 7, 8, 9])
      const beepTimes = await beeps(mp4, 440)
      expect(beepTimes).toHaveLength(10)
      expectInSync(
        flashTimes,
        beepTimes.filter((b) => flashTimes.some((f) => Math.abs(f - b) < 0.5)),
      )
    }, 180_000)

    it("cuts an audio-only export exactly where every channel was paused", async () => {
      const { video } = await pausedSession([micPaused])
      const metadata = await metadataOf(video.data.video_id)
      expect(metadata.video_channel_id).toBeNull()
      expect(Math.abs((metadata.paused_ms_removed ?? 0) - 3_000)).toBeLessThan(60)
      const mp4 = await file(video.data.video_id, "video.mp4")
      expect(Math.abs(Number((await probe(mp4)).format.duration) - 7)).toBeLessThan(0.15)
      const beepTimes = await beeps(mp4, 440)
      expect(beepTimes).toHaveLength(7)
      for (const [i, t] of beepTimes.entries()) expect(Math.abs(t - i)).toBeLessThan(0.03)
    }, 180_000)
  })
})
