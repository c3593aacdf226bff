/**
 * Rtstreams as resources against a real gateway and NATS: each channel of a started session is an
 * rtstream (category in `channel_id`, capture channel in `name`), readable, listable, stopped and
 * started as events of its session, playable over a recorded time range (HLS and MP4, checked with
 * ffprobe against the range asked) during the session and after it, exportable; and every bad
 * request is a 4xx naming its field.
 */
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  EVENT_SCHEMA_VERSION,
  newCommandId,
  newEventId,
  type RtstreamId,
  type SessionEvent,
  type SessionId,
} from "@capture/protocol"
import { type NatsServerHandle, runToolOk, startNatsServer, waitFor } from "@capture/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startTestGateway, type TestGateway } from "./TestGateway.js"

let nats: NatsServerHandle
let api: TestGateway
let dir: string
/** Two-second MPEG-TS segments, ten of each (20 s): a display's video and a mic's audio. */
let media: Record<"display:1" | "mic:default", Array<Uint8Array>>
/** The first video timestamp of display segment 0, in seconds (the clock ffprobe reports). */
let videoBase: number

const ffmpeg = process.env.FFMPEG_PATH ?? "ffmpeg"
const ffprobe = process.env.FFPROBE_PATH ?? "ffprobe"
/** Wall clock of the recordings' first samples (ms); segment i starts 2 s × i later. */
const T0 = 1_763_000_000_000
const T0s = T0 / 1000

const segmentsOf = (name: string, input: ReadonlyArray<string>, codec: ReadonlyArray<string>) => {
  const out = join(dir, name)
  mkdirSync(out, { recursive: true })
  execFileSync(ffmpeg, [
    ...["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", ...input, ...codec],
    ...["-f", "segment", "-segment_time", "2", "-segment_format", "mpegts", join(out, "%03d.ts")],
  ])
  return readdirSync(out)
    .sort()
    .map((file) => new Uint8Array(readFileSync(join(out, file))))
}

/** Every packet's time span of one stream of `input` (a URL, or `pipe:0` with bytes): first and end, s. */
const packetSpan = async (input: string, stream: "v" | "a", bytes?: Uint8Array) => {
  const run = await runToolOk(
    ffprobe,
    [
      ...["-v", "error", "-select_streams", `${stream}:0`],
      ...["-show_entries", "packet=pts_time,duration_time", "-of", "json", input],
    ],
    bytes,
  )
  const packets = (JSON.parse(run.stdout.toString()) as { packets: Array<Record<string, string>> }).packets
  const times = packets.map((p) => ({ pts: Number(p.pts_time), duration: Number(p.duration_time ?? 0) }))
  expect(times.length, `${stream} packets in ${input}`).toBeGreaterThan(0)
  return {
    first: Math.min(...times.map((t) => t.pts)),
    end: Math.max(...times.map((t) => t.pts + t.duration)),
  }
}

const codecsOf = async (url: string) => {
  const run = await runToolOk(ffprobe, [
    "-v",
    "error",
    "-show_entries",
    "stream=codec_name",
    "-of",
    "json",
    url,
  ])
  return (JSON.parse(run.stdout.toString()) as { streams: Array<{ codec_name: string }> }).streams
    .map((s) => s.codec_name)
    .sort()
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "capture-rtstreams-"))
  media = {
    "display:1": segmentsOf(
      "display",
      ["testsrc2=size=160x120:rate=10:duration=20"],
      ["-c:v", "libx264", "-g", "20", "-keyint_min", "20", "-sc_threshold", "0", "-pix_fmt", "yuv420p"],
    ),
    "mic:default": segmentsOf("mic", ["sine=frequency=440:sample_rate=48000:duration=20"], ["-c:a", "aac"]),
  }
  expect(media["display:1"]).toHaveLength(10)
  videoBase = (await packetSpan("pipe:0", "v", media["display:1"][0])).first
  nats = await startNatsServer()
  api = await startTestGateway(nats.url)
}, 120_000)
afterAll(async () => {
  await api?.stop()
  await nats?.stop()
  rmSync(dir, { recursive: true, force: true })
})

type Body = Record<string, unknown>
const data = <A = Body>(body: Body) => body.data as A

interface Rtstream {
  id: string
  rtstream_id: string
  name: string
  channel_id: string
  status: string
  store: boolean
  session_id: string
  [key: string]: unknown
}

const upload = async (sessionId: string, channel: keyof typeof media, index: number, final = false) => {
  const bytes = media[channel][index] as Uint8Array
  const response = await fetch(
    `${api.url}/capture/session/${sessionId}/channels/${encodeURIComponent(channel)}/segments/${index}`,
    {
      method: "PUT",
      headers: {
        "x-access-token": "sk-test-gateway-key",
        "content-type": "video/mp2t",
        "x-segment-start-ms": String(T0 + index * 2000),
        "x-segment-duration-ms": "2000",
        "x-segment-sha256": createHash("sha256").update(bytes).digest("hex"),
        ...(final ? { "x-segment-final": "1" } : {}),
      },
      body: bytes,
    },
  )
  expect(response.status, `${channel} #${index}`).toBe(200)
}

const uploadRange = async (
  sessionId: string,
  channel: keyof typeof media,
  from: number,
  to: number,
  last = -1,
) => {
  for (let i = from; i <= to; i++) await upload(sessionId, channel, i, i === last)
}

const startSession = async (
  endUser: string,
  channels: ReadonlyArray<object> = [{ channel_id: "display:1" }, { channel_id: "mic:default" }],
  collection = "default",
) => {
  const created = await api.request("POST", `/collection/${collection}/capture/session`, {
    body: { end_user_id: endUser },
  })
  const id = data(created.body).id as string
  const started = await api.request("POST", "/capture/session/start", { body: { session_id: id, channels } })
  expect(started.status).toBe(200)
  return id
}

const rtstreamsOf = async (sessionId: string) =>
  data<{ rtstreams: Array<Rtstream> }>(
    (await api.request("GET", `/collection/default/capture/session/${sessionId}`)).body,
  ).rtstreams

/** A session's rtstreams once the read model shows `count` of them (it follows the events). */
const activeRtstreams = (sessionId: string, count: number) =>
  waitFor(
    () => rtstreamsOf(sessionId),
    (found) => found.length === count,
  )

/** Stops a session whose channels all sent their final segment, and waits for `stopped`. */
const stopSession = async (sessionId: string) => {
  expect((await api.request("POST", `/capture/session/${sessionId}/stop`)).status).toBe(200)
  await waitFor(
    async () => (await api.runtime.host.load(sessionId)).state.value,
    (status) => status === "stopped",
  )
}

const refusal = (response: { status: number; body: Body }) => ({
  status: response.status,
  error_code: response.body.error_code,
  field: response.body.field,
})

describe("rtstreams as resources", () => {
  it("shows each started channel as an rtstream: the category in channel_id, the channel in name", async () => {
    const id = await startSession("user-a", [
      { channel_id: "display:1" },
      { channel_id: "mic:default" },
      { channel_id: "system_audio:default", store: false },
    ])
    expect(await rtstreamsOf(id)).toEqual([])
    await upload(id, "display:1", 0)
    const rtstreams = await waitFor(
      () => rtstreamsOf(id),
      (found) => found.length === 3,
    )
    const body = id.slice("cap-".length)
    expect(rtstreams.map((r) => [r.rtstream_id, r.name, r.channel_id, r.status])).toEqual([
      [`rts-${body}-00`, "display:1", "screen", "connected"],
      [`rts-${body}-01`, "mic:default", "mic", "connected"],
      [`rts-${body}-02`, "system_audio:default", "system_audio", "connected"],
    ])
    for (const rtstream of rtstreams) {
      const got = await api.request("GET", `/rtstream/${rtstream.rtstream_id}`)
      expect(got.status).toBe(200)
      expect(data(got.body)).toEqual({
        ...rtstream,
        id: rtstream.rtstream_id,
        session_id: id,
        end_user_id: "user-a",
        store: rtstream.name !== "system_audio:default",
      })
    }
  })

  it("stops an rtstream's transcription and indexes with it; starting it again starts neither", async () => {
    const id = await startSession("user-a")
    await upload(id, "mic:default", 0)
    const found = await waitFor(
      () => rtstreamsOf(id),
      (rtstreams) => rtstreams.some((r) => r.name === "mic:default"),
    )
    const rtstream = `/rtstream/${found.find((r) => r.name === "mic:default")?.rtstream_id}`
    const transcription = await api.request("POST", `${rtstream}/transcription`, {
      body: { action: "start" },
    })
    expect(data(transcription.body)).toMatchObject({ status: "active" })
    const index = await api.request("POST", `${rtstream}/index/scene`, {
      body: { extraction_type: "transcript", auto_start_transcript: false },
    })
    const indexId = data(index.body).rtstream_index_id as string
    expect(data(index.body)).toMatchObject({ status: "connected" })
    expect((await api.request("PATCH", `${rtstream}/status`, { body: { action: "stop" } })).status).toBe(200)
    const indexStatus = async () => {
      const listed = data((await api.request("GET", `${rtstream}/index/scene`)).body).scene_indexes
      return (listed as Array<Record<string, unknown>>).find((i) => i.rtstream_index_id === indexId)?.status
    }
    expect(await indexStatus()).toBe("stopped")
    expect(data((await api.request("GET", `${rtstream}/transcription`)).body)).toMatchObject({
      status: "stopped",
    })
    await api.request("PATCH", `${rtstream}/status`, { body: { action: "start" } })
    expect(await indexStatus()).toBe("stopped")
  })

  it("stops and starts an rtstream as events of its session; repeats are idempotent; an ended session's stay stopped", async () => {
    const id = await startSession("user-a")
    await upload(id, "display:1", 0)
    const [, mic] = await waitFor(
      () => rtstreamsOf(id),
      (found) => found.length === 2,
    )
    const path = `/rtstream/${mic?.rtstream_id}/status`
    for (let i = 0; i < 2; i++) {
      const stopped = await api.request("PATCH", path, { body: { action: "stop" } })
      expect(stopped.status).toBe(200)
      expect(data(stopped.body)).toMatchObject({ id: mic?.rtstream_id, status: "stopped" })
    }
    expect(data((await api.request("GET", `/rtstream/${mic?.rtstream_id}`)).body).status).toBe("stopped")
    expect((await rtstreamsOf(id)).map((r) => r.status)).toEqual(["connected", "stopped"])
    const started = await api.request("PATCH", path, { body: { action: "start" } })
    expect(data(started.body)).toMatchObject({ status: "connected" })
    const types: Array<string> = []
    for await (const stored of api.runtime.events.read(id)) types.push(stored.event.type)
    expect(types.filter((t) => t.startsWith("Rtstream"))).toEqual(["RtstreamStopped", "RtstreamStarted"])

    await upload(id, "display:1", 1, true)
    await upload(id, "mic:default", 0, true)
    await stopSession(id)
    expect(data((await api.request("PATCH", path, { body: { action: "stop" } })).body).status).toBe("stopped")
    const restart = await api.request("PATCH", path, { body: { action: "start" } })
    expect(restart).toMatchObject({
      status: 409,
      body: { error_code: "invalid_transition", current_status: "stopped" },
    })
  })

  it("lists a session's, a collection's and the account's rtstreams with VideoDB's paging, filters and ordering", async () => {
    const collection = await api.gateway.accounts.createCollection(
      (await api.gateway.accounts.firstAccount()).account.id,
      "listing",
    )
    const id = await startSession(
      "user-list",
      [{ channel_id: "display:1" }, { channel_id: "mic:default" }, { channel_id: "system_audio:default" }],
      collection.id,
    )
    await upload(id, "display:1", 0)
    const [system, mic, display] = await waitFor(
      () =>
        api
          .request("GET", `/rtstream?session_id=${id}`)
          .then((r) => data<{ results: Array<Rtstream> }>(r.body).results),
      (found) => found.length === 3,
    )
    // Newest first, then by id descending: the session's channels in reverse.
    expect([system, mic, display].map((r) => r?.name)).toEqual([
      "system_audio:default",
      "mic:default",
      "display:1",
    ])
    await api.request("PATCH", `/rtstream/${system?.rtstream_id}/status`, { body: { action: "stop" } })

    const list = async (query: string) => {
      const got = await api.request("GET", `/rtstream?${query}`)
      expect(got.status, query).toBe(200)
      return data<{
        results: Array<Rtstream>
        count: number
        limit: number
        offset: number
        next_offset: number | null
      }>(got.body)
    }
    expect((await list(`session_id=${id}&ordering=name`)).results.map((r) => r.name)).toEqual([
      "display:1",
      "mic:default",
      "system_audio:default",
    ])
    expect((await list(`session_id=${id}&ordering=created_at`)).results.map((r) => r.name)).toEqual([
      "display:1",
      "mic:default",
      "system_audio:default",
    ])
    expect((await list(`session_id=${id}&name=mic`)).results.map((r) => r.name)).toEqual(["mic:default"])
    expect((await list(`session_id=${id}&name=mic:default`)).results.map((r) => r.name)).toEqual([
      "mic:default",
    ])
    expect((await list(`session_id=${id}&status=stopped`)).results.map((r) => r.name)).toEqual([
      "system_audio:default",
    ])
    const first = await list(`session_id=${id}&limit=2`)
    expect(first).toMatchObject({ count: 3, limit: 2, offset: 0, next_offset: 2 })
    const second = await list(`session_id=${id}&limit=2&offset=${first.next_offset}`)
    expect(second).toMatchObject({ count: 3, offset: 2, next_offset: null })
    expect([...first.results, ...second.results].map((r) => r.name)).toEqual([
      "system_audio:default",
      "mic:default",
      "display:1",
    ])
    // The collection's (from the read model: eventually), and the account's, which holds it.
    const inCollection = await waitFor(
      () => list(`collection_id=${collection.id}&ordering=name`),
      (page) => page.count === 3,
    )
    expect(inCollection.results.map((r) => r.session_id)).toEqual([id, id, id])
    const all = await list("limit=100")
    expect(all.results.filter((r) => r.session_id === id)).toHaveLength(3)
    expect(all.results.every((r) => r.rtstream_id.startsWith("rts-"))).toBe(true)
    expect(all.limit).toBe(100)
    expect((await list("")).limit).toBe(10)
  })

  it("refuses a bad page, filter or ordering naming the field", async () => {
    const cases: Array<[string, string, string]> = [
      ["limit=0", "invalid_field", "limit"],
      ["limit=101", "invalid_field", "limit"],
      ["limit=abc", "invalid_field", "limit"],
      ["limit=1.5", "invalid_field", "limit"],
      ["limit=", "invalid_field", "limit"],
      ["offset=-1", "invalid_field", "offset"],
      ["offset=99999999", "invalid_field", "offset"],
      ["status=active", "invalid_field", "status"],
      ["ordering=size", "invalid_field", "ordering"],
      ["session_id=..", "invalid_field", "session_id"],
      ["collection_id=*", "invalid_field", "collection_id"],
    ]
    for (const [query, error_code, field] of cases) {
      expect(refusal(await api.request("GET", `/rtstream?${query}`)), query).toEqual({
        status: 400,
        error_code,
        field,
      })
    }
    expect(refusal(await api.request("GET", "/rtstream?collection_id=c-nope"))).toEqual({
      status: 404,
      error_code: "collection_not_found",
      field: "collection_id",
    })
    expect(refusal(await api.request("GET", "/rtstream?session_id=cap-nope"))).toEqual({
      status: 404,
      error_code: "session_not_found",
      field: "session_id",
    })
  })
})

describe("generateStream", () => {
  let id: string
  let display: Rtstream
  let mic: Rtstream

  const generate = (rtstream: Rtstream, query: string) =>
    api.request("GET", `/rtstream/${rtstream.rtstream_id}/stream?${query}`)
  const streamOf = async (rtstream: Rtstream, query: string) => {
    const got = await generate(rtstream, query)
    expect(got.status, query).toBe(200)
    return data<{ stream_url: string; player_url: string; start: number; end: number; format: string }>(
      got.body,
    )
  }
  /** The segment indexes a playlist lists, and whether it has ended. */
  const playlistOf = async (url: string) => {
    const text = await (await fetch(url)).text()
    return {
      indexes: text
        .split("\n")
        .flatMap((line) => /^(\d+)\.ts/.exec(line)?.[1] ?? [])
        .map(Number),
      ended: text.includes("#EXT-X-ENDLIST"),
    }
  }

  beforeAll(async () => {
    id = await startSession("user-stream")
    await uploadRange(id, "display:1", 0, 5)
    await uploadRange(id, "mic:default", 0, 5)
    const rtstreams = await activeRtstreams(id, 2)
    display = rtstreams.find((r) => r.name === "display:1") as Rtstream
    mic = rtstreams.find((r) => r.name === "mic:default") as Rtstream
  })

  it("plays a range while the session records: the playlist grows until the range is recorded", async () => {
    const live = await streamOf(display, `start=${T0s + 3}&end=${T0s + 30}`)
    expect(live).toMatchObject({ format: "hls", start: T0s + 3, end: T0s + 30 })
    // Segments 1 (2–4 s) to 5 (10–12 s) so far; the range runs on past what is recorded.
    expect(await playlistOf(live.stream_url)).toEqual({ indexes: [1, 2, 3, 4, 5], ended: false })
    await uploadRange(id, "display:1", 6, 9, 9)
    expect(await playlistOf(live.stream_url)).toEqual({ indexes: [1, 2, 3, 4, 5, 6, 7, 8, 9], ended: true })
    await uploadRange(id, "mic:default", 6, 9, 9)
  })

  it("cuts exactly the asked range (±1 segment) as HLS and as MP4, checked with ffprobe", async () => {
    // 5 s to 11 s of the recording: segments 2 (4–6 s) to 5 (10–12 s).
    const range = `start=${T0s + 5}&end=${T0s + 11}`
    const hls = await streamOf(display, range)
    expect(hls).toMatchObject({ start: T0s + 5, end: T0s + 11, format: "hls" })
    expect(await playlistOf(hls.stream_url)).toEqual({ indexes: [2, 3, 4, 5], ended: true })
    const span = await packetSpan(hls.stream_url, "v")
    // On the recording's clock: display segment 0's first frame is T0.
    const startAt = T0s + (span.first - videoBase)
    const endAt = T0s + (span.end - videoBase)
    expect(startAt).toBeGreaterThanOrEqual(T0s + 5 - 2 - 0.05)
    expect(startAt).toBeLessThanOrEqual(T0s + 5 + 0.05)
    expect(endAt).toBeGreaterThanOrEqual(T0s + 11 - 0.05)
    expect(endAt).toBeLessThanOrEqual(T0s + 11 + 2 + 0.15)

    const mp4 = await streamOf(display, `${range}&format=mp4`)
    expect(mp4.format).toBe("mp4")
    expect(mp4.stream_url).toMatch(/\/clip\.mp4\?/)
    expect(await codecsOf(mp4.stream_url)).toEqual(["h264"])
    const video = await packetSpan(mp4.stream_url, "v")
    expect(video.end - video.first).toBeGreaterThanOrEqual(6 - 0.05)
    expect(video.end - video.first).toBeLessThanOrEqual(6 + 4 + 0.15)
    expect(video.end - video.first).toBeCloseTo(endAt - startAt, 1)

    const audio = await streamOf(mic, `${range}&format=mp4`)
    expect(await codecsOf(audio.stream_url)).toEqual(["aac"])
    const sound = await packetSpan(audio.stream_url, "a")
    expect(sound.end - sound.first).toBeGreaterThanOrEqual(6 - 0.05)
    expect(sound.end - sound.first).toBeLessThanOrEqual(6 + 4 + 0.15)

    const player = await fetch(hls.player_url)
    expect(player.status).toBe(200)
    expect(await player.text()).toContain("index.m3u8?exp=")
  })

  it("serves only the clip's own segments, and only under its signature", async () => {
    const clip = await streamOf(display, `start=${T0s + 5}&end=${T0s + 11}`)
    const outside = clip.stream_url.replace("index.m3u8", "0.ts")
    expect((await fetch(outside)).status).toBe(404)
    expect((await fetch(clip.stream_url.replace("index.m3u8", "3.ts"))).status).toBe(200)
    const tampered = clip.stream_url.replace(
      /\/(\d+)-(\d+)\//,
      (_, from: string, to: string) => `/${Number(from) - 4000}-${to}/`,
    )
    expect((await fetch(tampered)).status).toBe(401)
    expect(
      (await fetch(clip.stream_url.replace(/sig=(.)/, (_, c: string) => `sig=${c === "A" ? "B" : "A"}`)))
        .status,
    ).toBe(401)
  })

  it("after the session: clamps the range to the recording, and refuses ranges outside it", async () => {
    await stopSession(id)
    const tail = await streamOf(display, `start=${T0s + 15}&end=${T0s + 100}`)
    expect(tail).toMatchObject({ start: T0s + 15, end: T0s + 20 })
    expect(await playlistOf(tail.stream_url)).toEqual({ indexes: [7, 8, 9], ended: true })
    const head = await streamOf(mic, `start=${T0s - 100}&end=${T0s + 1.5}`)
    expect(head).toMatchObject({ start: T0s, end: T0s + 1.5 })

    const cases: Array<[string, number, string, string]> = [
      [`start=${T0s + 5}&end=${T0s + 5}`, 400, "invalid_time_range", "end"],
      [`start=${T0s + 6}&end=${T0s + 5}`, 400, "invalid_time_range", "end"],
      [`start=${T0s - 60}&end=${T0s - 30}`, 400, "time_range_not_recorded", "end"],
      [`start=${T0s + 20}&end=${T0s + 30}`, 400, "time_range_not_recorded", "start"],
      [`start=${T0 + 5000}&end=${T0 + 11000}`, 400, "invalid_field", "start"],
      [`start=abc&end=${T0s + 5}`, 400, "invalid_field", "start"],
      [`start=&end=${T0s + 5}`, 400, "invalid_field", "start"],
      [`start=${T0s}`, 400, "missing_field", "end"],
      [`start=${T0s}&end=${T0s + 5}&format=avi`, 400, "invalid_field", "format"],
    ]
    for (const [query, status, error_code, field] of cases) {
      expect(refusal(await generate(display, query)), query).toEqual({ status, error_code, field })
    }
  })

  it("refuses a store: false rtstream once its session ended (its media is not kept)", async () => {
    const other = await startSession("user-stream", [{ channel_id: "display:1", store: false }])
    await uploadRange(other, "display:1", 0, 1, 1)
    const [rtstream] = await activeRtstreams(other, 1)
    expect((await generate(rtstream as Rtstream, `start=${T0s}&end=${T0s + 2}`)).status).toBe(200)
    await stopSession(other)
    expect(refusal(await generate(rtstream as Rtstream, `start=${T0s}&end=${T0s + 2}`))).toEqual({
      status: 400,
      error_code: "time_range_not_recorded",
      field: "rtstream_id",
    })
  })
})

describe("rtstream export", () => {
  it("needs its session stopped, a stored channel and an API key; answers processing while the export runs", async () => {
    const id = await startSession("user-export", [
      { channel_id: "display:1" },
      { channel_id: "mic:default", store: false },
    ])
    await upload(id, "display:1", 0, true)
    const [display, mic] = await activeRtstreams(id, 2)
    const exportOf = (rtstream: Rtstream | undefined, token?: string) =>
      api.request("POST", `/rtstream/${rtstream?.rtstream_id}/export`, {
        body: { name: "clip" },
        ...(token === undefined ? {} : { token }),
      })
    expect(await exportOf(display)).toMatchObject({
      status: 409,
      body: { error_code: "invalid_transition", current_status: "active" },
    })
    await upload(id, "mic:default", 0, true)
    await stopSession(id)
    expect(refusal(await exportOf(mic))).toEqual({
      status: 409,
      error_code: "export_channel_not_stored",
      field: "rtstream_id",
    })
    const token = await api.request("POST", "/capture/session/token", { body: { user_id: "user-export" } })
    expect(refusal(await exportOf(display, data(token.body).token as string))).toMatchObject({
      status: 403,
      error_code: "forbidden",
    })
    // No muxer runs here: the session's own export stays `exporting`, so the answer is to poll.
    const processing = await exportOf(display)
    expect(processing).toEqual({
      status: 202,
      body: {
        success: true,
        status: "processing",
        data: { output_url: `${api.url}/rtstream/${display?.rtstream_id}/export?name=clip` },
      },
    })
    const polled = await api.request("GET", `/rtstream/${display?.rtstream_id}/export?name=clip`)
    expect(polled).toEqual(processing)
  })
})

describe("who reaches an rtstream", () => {
  let display: Rtstream
  beforeAll(async () => {
    const id = await startSession("owner")
    await upload(id, "display:1", 0)
    ;[display] = (await activeRtstreams(id, 2)) as [Rtstream]
  })

  const everyRoute = (rtstreamId: string) =>
    [
      ["GET", `/rtstream/${rtstreamId}`, undefined],
      ["PATCH", `/rtstream/${rtstreamId}/status`, { action: "stop" }],
      ["GET", `/rtstream/${rtstreamId}/stream?start=${T0s}&end=${T0s + 1}`, undefined],
      ["POST", `/rtstream/${rtstreamId}/export`, {}],
      ["GET", `/rtstream/${rtstreamId}/export`, undefined],
    ] as const

  it("answers 404 for an unknown rtstream and 400 for a malformed id, naming rtstream_id", async () => {
    const unknownSession = `rts-${"0".repeat(26)}-00`
    const unknownChannel = `${display.rtstream_id.slice(0, -2)}07`
    for (const id of [unknownSession, unknownChannel, "rts-01JC00000000000000000000ZZ"]) {
      for (const [method, path, body] of everyRoute(id)) {
        expect(
          refusal(await api.request(method, path, body === undefined ? {} : { body })),
          `${method} ${path}`,
        ).toEqual({
          status: 404,
          error_code: "rtstream_not_found",
          field: "rtstream_id",
        })
      }
    }
    for (const id of ["rts-", "abc", "rts-a.b", `rts-${"x".repeat(80)}`]) {
      expect(refusal(await api.request("GET", `/rtstream/${id}`)), id).toEqual({
        status: 400,
        error_code: "invalid_field",
        field: "rtstream_id",
      })
    }
  })

  it("hides another account's and another end user's rtstreams (404), and lets a client token reach its own", async () => {
    const other = await api.gateway.accounts.createAccount("other")
    const { key } = await api.gateway.accounts.createApiKey(other.id)
    const account = (await api.gateway.accounts.firstAccount()).account.id
    const stranger = await api.gateway.accounts.createClientToken(account, {
      expiresInSeconds: 600,
      endUserId: "someone-else",
    })
    const own = await api.gateway.accounts.createClientToken(account, {
      expiresInSeconds: 600,
      endUserId: "owner",
    })
    for (const token of [key, stranger.token]) {
      for (const [method, path, body] of everyRoute(display.rtstream_id)) {
        const got = await api.request(method, path, { token, ...(body === undefined ? {} : { body }) })
        expect(refusal(got), `${method} ${path}`).toEqual({
          status: 404,
          error_code: "rtstream_not_found",
          field: "rtstream_id",
        })
      }
      const listed = await api.request("GET", "/rtstream?limit=100", { token })
      expect(
        data<{ results: Array<Rtstream> }>(listed.body).results.some(
          (r) => r.rtstream_id === display.rtstream_id,
        ),
      ).toBe(false)
    }
    expect((await api.request("GET", `/rtstream/${display.rtstream_id}`, { token: own.token })).status).toBe(
      200,
    )
    const mine = await api.request("GET", "/rtstream?limit=100", { token: own.token })
    const results = data<{ results: Array<Rtstream> }>(mine.body).results
    expect(results.length).toBeGreaterThan(0)
    expect(results.every((r) => r.end_user_id === "owner")).toBe(true)
    expect((await api.request("GET", `/rtstream/${display.rtstream_id}`, { token: null })).status).toBe(401)
  })

  it("reaches an rtstream of a history stored before ids were derived and categories were used", async () => {
    const id = await startSession("legacy")
    const loaded = await api.runtime.host.load(id)
    const legacyId = "rts-01JC0000000000000000LEGACY" as RtstreamId
    const activated = {
      type: "SessionActivated",
      id: newEventId(),
      session_id: id as SessionId,
      sequence: loaded.state.context.sequence + 1,
      time: new Date().toISOString(),
      schema_version: EVENT_SCHEMA_VERSION,
      command_id: newCommandId(),
      // As stored before: a random id, and the channel id in channel_id as well as in name.
      data: {
        rtstreams: [
          { rtstream_id: legacyId, name: "display:1", channel_id: "display:1", media_types: ["video"] },
        ],
      },
    } as SessionEvent
    await api.runtime.events.append(activated, loaded.streamSequence, activated.command_id)
    api.runtime.host.forget(id)
    const found = await waitFor(
      () => api.request("GET", `/rtstream/${legacyId}`),
      (got) => got.status === 200,
    )
    expect(data(found.body)).toMatchObject({
      id: legacyId,
      name: "display:1",
      channel_id: "screen",
      session_id: id,
    })
    expect((await rtstreamsOf(id)).map((r) => r.channel_id)).toEqual(["screen"])
  })
})
