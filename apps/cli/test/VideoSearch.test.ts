/**
 * Search of an exported video with VideoDB's own Node SDK (`videodb` 0.2.0, unchanged) against a
 * real `capture serve`: a session's mic recorded from known speech (Festival), transcribed by the
 * local engine while it records, stopped and exported; then the seed's
 * `coll.getVideo(id)`, `video.indexSpokenWords()`, `video.search(query)` and `shot.generateStream()`,
 * and the transcript (`getTranscript`, `getTranscriptText`, `generateTranscript`).
 */
import {
  festivalAvailable,
  type NatsServerHandle,
  type ScreenRecording,
  type SpeechRecording,
  screenRecording,
  speechRecording,
  startNatsServer,
  wordRecall,
} from "@capture/testkit"
import { connect, type SearchResult } from "videodb"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { launchChromium, play, playedPast } from "./browser.js"
import { killIfRunning } from "./cli.js"
import { type CaptureServer, pollUntil, startCaptureServer } from "./endToEnd.js"
import { decodeErrors, ffmpeg, probe } from "./media.js"
import { startedSession, uploadSegment } from "./transcription.js"

const SENTENCES = [
  "Let's schedule the meeting for Thursday.",
  "The budget discussion is next week.",
  "Please send the report to the team before Friday.",
]
// Where the local engine puts a sentence against where it was spoken (as Transcription.test).
const TOLERANCE_S = 0.4

let nats: NatsServerHandle
let server: CaptureServer
let recording: SpeechRecording
/** A screen with no sound: a display-only export has no spoken words. */
let screen: ScreenRecording
/** The video the first test transcribes live: the second finds it beside its own. */
let liveVideoId = ""

beforeAll(async () => {
  nats = await startNatsServer()
  server = await startCaptureServer(nats.url)
  if (festivalAvailable()) recording = await speechRecording(ffmpeg, SENTENCES, { leadMs: 3_000 })
  screen = await screenRecording(ffmpeg, [{ lines: ["Nothing said here"], seconds: 4 }])
}, 120_000)
afterAll(async () => {
  await killIfRunning(server?.process)
  await nats?.stop()
})

/**
 * A one-channel session of `endUser` (the mic recorded from the speech, transcribed when asked, or
 * a display), stopped and exported: its id, the channel's rtstream and the export's video id.
 */
const exportedSession = async (
  endUser: string,
  startMs: number,
  transcribe: boolean,
  channelId = "mic:default",
  source: Pick<SpeechRecording, "segments"> = recording,
) => {
  const { sessionId, rtstream: mic } = await startedSession(server, source, { endUser, startMs, channelId })
  if (transcribe) await server.data("POST", `/rtstream/${mic}/transcription`, { action: "start" })
  for (let index = 1; index < source.segments.length; index++) {
    await uploadSegment(server, sessionId, source, index, startMs, channelId)
  }
  if (transcribe) {
    await pollUntil(
      "the final transcript",
      () => server.data("GET", `/rtstream/${mic}/transcription`),
      (page) => page.total === SENTENCES.length,
      { timeoutMs: 120_000, intervalMs: 500 },
    )
  }
  await server.data("POST", `/capture/session/${sessionId}/stop`)
  // A stop exports the session.
  const exported = await pollUntil(
    "the export",
    () => server.data("GET", `/collection/default/capture/session/${sessionId}`),
    (session) => session.status === "exported" || session.status === "failed",
    { timeoutMs: 120_000, intervalMs: 250 },
  )
  expect(exported.status).toBe("exported")
  return { sessionId, mic, videoId: exported.exported_video_id as string }
}

/** A page script taking HLS away: no Media Source Extensions (so no hls.js) and no native HLS. */
const WITHOUT_HLS = `
  for (const name of ["MediaSource", "ManagedMediaSource", "WebKitMediaSource"])
    Object.defineProperty(window, name, { value: undefined, configurable: true })
  const canPlayType = HTMLMediaElement.prototype.canPlayType
  HTMLMediaElement.prototype.canPlayType = function (type) {
    return /mpegurl/i.test(type) ? "" : canPlayType.call(this, type)
  }
`

/** The files a player page falls back on without HLS (its `data-files`). */
const fallbackFiles = async (pageUrl: string): Promise<ReadonlyArray<string>> => {
  const page = await (await fetch(pageUrl)).text()
  return JSON.parse(
    (/data-files="([^"]*)"/.exec(page)?.[1] ?? "[]").replaceAll("&quot;", '"'),
  ) as Array<string>
}

/**
 * An MP4 of ranges of a video: it decodes cleanly from 0 and lasts at least `seconds` (what its
 * ranges hold) and less than `under` (it is not the whole video); its length.
 */
const expectRangeMp4 = async (url: string, seconds: number, under: number) => {
  expect(url).toMatch(/\/media\/m-[^/]+\/video\.mp4\?timeline=/)
  expect(await decodeErrors(url)).toBe("")
  const { format } = await probe(url)
  expect(Number(format.start_time ?? 0)).toBeLessThan(0.1)
  expect(Number(format.duration)).toBeGreaterThanOrEqual(seconds - 0.1)
  expect(Number(format.duration)).toBeLessThan(under)
  return Number(format.duration)
}

/** A transcript grouped by sentence: one a spoken sentence (pocketsphinx does not punctuate: an utterance), where it was said. */
const expectSentencesAt = (answer: Record<string, unknown>) => {
  const sentences = answer.word_timestamps as ReadonlyArray<{ start: number; end: number; text: string }>
  expect(sentences).toHaveLength(SENTENCES.length)
  for (const [i, sentence] of sentences.entries()) {
    const spoken = recording.sentences[i]
    expect(wordRecall(SENTENCES[i] ?? "", sentence.text)).toBeGreaterThanOrEqual(0.5)
    expect(Math.abs(sentence.start - (spoken?.startMs ?? 0) / 1000)).toBeLessThan(TOLERANCE_S)
    expect(Math.abs(sentence.end - (spoken?.endMs ?? 0) / 1000)).toBeLessThan(TOLERANCE_S)
  }
}

describe.skipIf(!festivalAvailable())("search of an exported video with VideoDB's SDK", () => {
  it("indexes the spoken words, finds a sentence at its time in the video and plays that range", async () => {
    const startMs = Date.now() - 60_000
    const { videoId } = await exportedSession("video-user", startMs, true)
    liveVideoId = videoId

    const conn = connect({ apiKey: server.apiKey, baseUrl: server.base })
    const coll = await conn.getCollection()
    const video = await coll.getVideo(videoId)
    expect(video).toMatchObject({ id: videoId, collectionId: "default" })
    expect(Number(video.length)).toBeGreaterThan(recording.durationMs / 1000 - 2.5)

    expect(await video.indexSpokenWords()).toMatchObject({ success: true })
    const indexed = await server.data("POST", `/video/${videoId}/index`, { index_type: "spoken_word" })
    expect(indexed).toMatchObject({
      channel_ids: ["mic:default"],
      segments: SENTENCES.length,
      transcription_status: "active",
    })

    // Its transcript (`getTranscript`, `getTranscriptText`): each word timed inside its sentence.
    const transcript = await video.getTranscript()
    expect(transcript.wordTimestamps.map((w) => w.word).join(" ")).toBe(transcript.text)
    for (const sentence of SENTENCES)
      expect(wordRecall(sentence, transcript.text)).toBeGreaterThanOrEqual(0.5)
    for (const word of transcript.wordTimestamps) {
      const inside = recording.sentences.some(
        (spoken) =>
          word.start >= spoken.startMs / 1000 - TOLERANCE_S && word.end <= spoken.endMs / 1000 + TOLERANCE_S,
      )
      expect(inside, `${word.word} at ${word.start}-${word.end}`).toBe(true)
    }
    const second = recording.sentences[1]
    const said = await video.getTranscriptText((second?.startMs ?? 0) / 1000, (second?.endMs ?? 0) / 1000)
    expect(wordRecall(SENTENCES[1] ?? "", said)).toBeGreaterThanOrEqual(0.5)
    expect(wordRecall(SENTENCES[2] ?? "", said)).toBeLessThan(0.5)
    expectSentencesAt(await server.data("GET", `/video/${videoId}/transcription?segmenter=sentence`))

    // The seed's call: the SDK's defaults (semantic, spoken_word, score ≥ 0.2, 50 results).
    const result = await video.search("budget discussion")
    const shot = result.shots[0]
    expect(shot?.videoId).toBe(videoId)
    expect(wordRecall(SENTENCES[1] ?? "", shot?.text ?? "")).toBeGreaterThanOrEqual(0.5)
    // Seconds of the video: the export starts where the recording does.
    const spoken = recording.sentences[1]
    expect(Math.abs((shot?.start ?? 0) - (spoken?.startMs ?? 0) / 1000)).toBeLessThan(TOLERANCE_S)
    expect(Math.abs((shot?.end ?? 0) - (spoken?.endMs ?? 0) / 1000)).toBeLessThan(TOLERANCE_S)
    expect(shot?.searchScore).toBeGreaterThan(0.2)

    // The shot plays: a playlist of the segments holding its range, starting at its start.
    const url = (await shot?.generateStream()) ?? ""
    expect(url).toContain(`/media/${videoId}/index.m3u8?timeline=`)
    const playlist = await (await fetch(url)).text()
    expect(playlist).toMatch(/#EXT-X-START:TIME-OFFSET=\d+\.\d{3},PRECISE=YES/)
    const pieces = playlist.split("\n").filter((line) => /^seg\/\d+\.m4s$/.test(line))
    expect(pieces.length).toBeGreaterThan(0)
    expect(pieces.length).toBeLessThanOrEqual(
      Math.ceil(((spoken?.endMs ?? 0) - (spoken?.startMs ?? 0)) / 2000) + 2,
    )
    const piece = await fetch(new URL(pieces[0] ?? "", url))
    expect(piece.status).toBe(200)
    expect((await piece.arrayBuffer()).byteLength).toBeGreaterThan(0)
    expect((await fetch(shot?.playerUrl ?? "")).status).toBe(200)

    // Without HLS, the player plays the MP4 of the shot's range: its segments from 0, not the whole video.
    const shotFiles = await fallbackFiles(shot?.playerUrl ?? "")
    expect(shotFiles).toHaveLength(1)
    const shotLength = (shot?.end ?? 0) - (shot?.start ?? 0)
    await expectRangeMp4(shotFiles[0] ?? "", shotLength, shotLength + 2 * 2.2)

    // The search's shots compiled into one stream (`SearchResult.compile`, `POST /compile`).
    const compiled = await result.compile()
    expect(compiled).toContain(`/media/${videoId}/index.m3u8?timeline=`)
    expect(result.playerUrl).toContain(`/player/${videoId}?timeline=`)
    const compiledPlaylist = await (await fetch(compiled)).text()
    expect(compiledPlaylist).toMatch(/^seg\/\d+\.m4s$/m)
    expect((await fetch(result.playerUrl ?? "")).status).toBe(200)
    // Its MP4 fallback holds every shot's range.
    const compiledFiles = await fallbackFiles(result.playerUrl ?? "")
    expect(compiledFiles).toHaveLength(1)
    const shotsLength = result.shots.reduce((sum, s) => sum + (s.end - s.start), 0)
    await expectRangeMp4(compiledFiles[0] ?? "", shotsLength, Number(video.length) + 0.5)
    // The raw answer carries the same URLs per shot.
    const raw = await server.data("POST", `/video/${videoId}/search`, { query: "report friday" })
    const docs = (
      raw.results as ReadonlyArray<{ docs: ReadonlyArray<{ text: string; stream_url: string }> }>
    )[0]?.docs
    expect(docs?.[0]?.text).toMatch(/report|friday/i)
    expect(docs?.[0]?.stream_url).toContain("timeline=")

    // Nothing for words never said, or a scene search of a video without a display.
    expect((await video.search("xylophone")).shots).toEqual([])
    expect((await video.search("budget", "scene")).shots).toEqual([])

    // Another end user's token does not find the video; its own end user's does.
    const token = async (user: string) =>
      (await server.data("POST", "/capture/session/token", { user_id: user })).token as string
    const asUser = async (user: string) =>
      fetch(`${server.base}/video/${videoId}/search`, {
        method: "POST",
        headers: { "x-access-token": await token(user), "content-type": "application/json" },
        body: JSON.stringify({ query: "budget" }),
      })
    const videoAs = async (user: string) =>
      (await fetch(`${server.base}/video/${videoId}`, { headers: { "x-access-token": await token(user) } }))
        .status
    expect([await videoAs("someone-else"), await videoAs("video-user")]).toEqual([404, 200])
    const stranger = await asUser("someone-else")
    expect(stranger.status).toBe(404)
    expect(await stranger.json()).toMatchObject({ error_code: "not_found", field: "video_id" })
    expect((await asUser("video-user")).status).toBe(200)
  }, 300_000)

  it("transcribes a video's audio from the recording when it was not transcribed live", async () => {
    const startMs = Date.now() - 60_000
    const { videoId, mic } = await exportedSession("video-later", startMs, false)
    expect((await server.data("GET", `/rtstream/${mic}/transcription`)).status).toBe("inactive")
    // Nothing to search yet; the raw call answers `processing` with the URL to poll.
    expect((await server.data("POST", `/video/${videoId}/search`, { query: "budget" })).results).toEqual([])
    const asked = await server.call("POST", `/video/${videoId}/index`, { index_type: "spoken_word" })
    expect([asked.status, asked.body.status]).toEqual([202, "processing"])
    const outputUrl = (asked.body.data as { output_url: string }).output_url
    expect(outputUrl).toBe(`${server.base}/video/${videoId}/index`)

    // The SDK polls it until the transcription is done.
    const conn = connect({ apiKey: server.apiKey, baseUrl: server.base })
    const video = await (await conn.getCollection()).getVideo(videoId)
    expect(await video.indexSpokenWords()).toMatchObject({ success: true })
    const index = await server.data("GET", `/video/${videoId}/index`)
    expect(index).toMatchObject({
      channel_ids: ["mic:default"],
      segments: SENTENCES.length,
      transcription_status: "stopped",
      transcribed_from_recording: ["mic:default"],
    })
    // Asked again: nothing transcribed twice.
    await video.indexSpokenWords()
    const page = await server.data("GET", `/rtstream/${mic}/transcription?page_size=1000`)
    const utterances = (page.segments as ReadonlyArray<{ utterance: number }>).map((s) => s.utterance)
    expect(utterances).toEqual(SENTENCES.map((_, i) => i + 1))
    expect(page.status).toBe("stopped")

    const shot = (await video.search("budget discussion")).shots[0]
    expect(wordRecall(SENTENCES[1] ?? "", shot?.text ?? "")).toBeGreaterThanOrEqual(0.5)
    const spoken = recording.sentences[1]
    expect(Math.abs((shot?.start ?? 0) - (spoken?.startMs ?? 0) / 1000)).toBeLessThan(TOLERANCE_S)
    expect(Math.abs((shot?.end ?? 0) - (spoken?.endMs ?? 0) / 1000)).toBeLessThan(TOLERANCE_S)

    // The collection's videos (`coll.search`): this one and the first test's said it too.
    const coll = await conn.getCollection()
    const found = (await coll.search("budget discussion")) as SearchResult
    const videos = new Set(found.shots.map((s) => s.videoId))
    expect(videos).toEqual(new Set([videoId, liveVideoId]))
    for (const s of found.shots)
      expect(wordRecall(SENTENCES[1] ?? "", s.text ?? "")).toBeGreaterThanOrEqual(0.5)
    // Compiled: one playlist of both videos' ranges, each with its own init segment.
    const both = await found.compile()
    expect(both).toContain("/compile/index.m3u8?v=")
    const playlist = await (await fetch(both)).text()
    const maps = [...playlist.matchAll(/#EXT-X-MAP:URI="([^"]+)"/g)].map((m) => m[1] ?? "")
    expect(new Set(maps)).toEqual(new Set([videoId, liveVideoId].map((id) => `../media/${id}/init.mp4`)))
    expect(playlist).toContain("#EXT-X-DISCONTINUITY")
    const pieces = playlist.split("\n").filter((line) => line.endsWith(".m4s"))
    for (const piece of [pieces[0], pieces.at(-1)]) {
      const answer = await fetch(new URL(piece ?? "", both))
      expect([answer.status, (await answer.arrayBuffer()).byteLength > 0]).toEqual([200, true])
    }
    for (const map of maps) expect((await fetch(new URL(map, both))).status).toBe(200)
    expect((await fetch(found.playerUrl ?? "")).status).toBe(200)
    // Without HLS, the compiled player plays each video's ranges as an MP4, one after the other.
    const files = await fallbackFiles(found.playerUrl ?? "")
    expect(files.map((file) => /\/media\/(m-[^/]+)\//.exec(file)?.[1])).toEqual([
      ...new Set(found.shots.map((s) => s.videoId)),
    ])
    for (const file of files) {
      const shotsOf = found.shots.filter((s) => file.includes(`/media/${s.videoId}/`))
      const length = shotsOf.reduce((sum, s) => sum + (s.end - s.start), 0)
      await expectRangeMp4(file, length, recording.durationMs / 1000 + 0.5)
    }
    // A browser without HLS (no Media Source Extensions, no native HLS) plays them in order.
    const browser = await launchChromium()
    try {
      const context = await browser.newContext()
      await context.addInitScript({ content: WITHOUT_HLS })
      const page = await context.newPage()
      await page.goto(found.playerUrl ?? "")
      await page.waitForSelector("video[data-engine='file'][data-file='0']")
      await play(page, "video")
      await page.waitForSelector("video[data-file='1']", { timeout: 60_000 })
      await playedPast(page, "video", 0.5, 30_000)
      expect(await page.$eval("video", (video: PageVideo) => video.currentSrc)).toBe(files[1])
    } finally {
      await browser.close()
    }

    // A client token sees its own end user's videos only.
    const token = (await server.data("POST", "/capture/session/token", { user_id: "video-later" }))
      .token as string
    const asUser = await fetch(`${server.base}/collection/default/search`, {
      method: "POST",
      headers: { "x-access-token": token, "content-type": "application/json" },
      body: JSON.stringify({ query: "budget discussion" }),
    })
    const userResults = ((await asUser.json()) as { data: { results: ReadonlyArray<{ video_id: string }> } })
      .data.results
    expect(userResults.map((r) => r.video_id)).toEqual([videoId])
    // Compiling another end user's video is refused as if it did not exist.
    const foreign = await fetch(`${server.base}/compile`, {
      method: "POST",
      headers: { "x-access-token": token, "content-type": "application/json" },
      body: JSON.stringify([{ video_id: liveVideoId, shots: [[0, 2]] }]),
    })
    expect([foreign.status, ((await foreign.json()) as { field?: string }).field]).toEqual([404, "video_id"])
  }, 300_000)

  it("transcribes a video's audio from the recording when its transcript is asked for", async () => {
    const { videoId, mic } = await exportedSession("video-transcript", Date.now() - 60_000, false)
    // VideoDB generates a transcript that is not there: the answer is the job, and where to poll.
    const query = "segmenter=sentence&length=1"
    const asked = await server.call("GET", `/video/${videoId}/transcription?${query}`)
    expect([asked.status, asked.body.status]).toEqual([202, "processing"])
    const outputUrl = (asked.body.data as { output_url: string }).output_url
    expect(outputUrl).toBe(`${server.base}/video/${videoId}/transcription?${query}`)

    // The SDK's `generateTranscript` polls the job until it is done.
    const conn = connect({ apiKey: server.apiKey, baseUrl: server.base })
    const video = await (await conn.getCollection()).getVideo(videoId)
    expect(await video.generateTranscript()).toEqual({
      success: true,
      message: "Transcript generated successfully",
    })
    const text = await video.getTranscriptText()
    for (const sentence of SENTENCES) expect(wordRecall(sentence, text)).toBeGreaterThanOrEqual(0.5)
    const bySentence = await server.data("GET", new URL(outputUrl).pathname + new URL(outputUrl).search)
    expectSentencesAt(bySentence)
    expect(bySentence).toMatchObject({
      channel_ids: ["mic:default"],
      transcription_status: "stopped",
      transcribed_from_recording: ["mic:default"],
    })
    // Asked again, and through the index: nothing transcribed twice.
    expect(await video.indexSpokenWords()).toMatchObject({ success: true })
    expect((await video.getTranscript(0, 1_000, "word", 1, true)).text).toBe(text)
    const page = await server.data("GET", `/rtstream/${mic}/transcription?page_size=1000`)
    expect((page.segments as ReadonlyArray<{ utterance: number }>).map((s) => s.utterance)).toEqual(
      SENTENCES.map((_, i) => i + 1),
    )

    // Another end user's token does not reach it.
    const token = (await server.data("POST", "/capture/session/token", { user_id: "someone-else" }))
      .token as string
    const foreign = await fetch(`${server.base}/video/${videoId}/transcription`, {
      headers: { "x-access-token": token },
    })
    expect([foreign.status, ((await foreign.json()) as { field?: string }).field]).toEqual([404, "video_id"])
  }, 300_000)

  it("refuses bad input with a stable code and the field", async () => {
    const { videoId } = await exportedSession("video-silent", Date.now() - 60_000, false)
    const cases: ReadonlyArray<[string, object, number, string]> = [
      ["index", { index_type: "scene" }, 400, "index_type"],
      ["search", { query: "  " }, 400, "query"],
      ["search", { query: "budget", index_type: "everything" }, 400, "index_type"],
      ["search", { query: "budget", score_threshold: 2 }, 400, "score_threshold"],
      ["stream", { timeline: [[5, 2]] }, 400, "timeline"],
      ["stream", { timeline: [[100_000, 100_001]] }, 400, "timeline"],
      ["stream", { timeline: "0-5" }, 400, "timeline"],
    ]
    for (const [route, body, status, field] of cases) {
      const answer = await server.call("POST", `/video/${videoId}/${route}`, body)
      expect([answer.status, answer.body.field], `${route} ${JSON.stringify(body)}`).toEqual([status, field])
    }
    const compileCases: ReadonlyArray<[unknown, number, string]> = [
      [[], 400, "body"],
      [[{ video_id: videoId, shots: [[5, 2]] }], 400, "shots"],
      [[{ video_id: videoId, shots: [[100_000, 100_001]] }], 400, "shots"],
      [[{ video_id: "m-NOSUCHVIDEO0000", shots: [[0, 2]] }], 404, "video_id"],
    ]
    for (const [body, status, field] of compileCases) {
      const answer = await fetch(`${server.base}/compile`, {
        method: "POST",
        headers: { "x-access-token": server.apiKey, "content-type": "application/json" },
        body: JSON.stringify(body),
      })
      const parsed = (await answer.json()) as { field?: string }
      expect([answer.status, parsed.field], `compile ${JSON.stringify(body)}`).toEqual([status, field])
    }
    const emptyQuery = await server.call("POST", "/collection/default/search", { query: " " })
    expect([emptyQuery.status, emptyQuery.body.field]).toEqual([400, "query"])
    for (const query of ["", "?v=nonsense", `?v=${videoId}:9-3`]) {
      const answer = await fetch(`${server.base}/compile/index.m3u8${query}`)
      expect([answer.status, ((await answer.json()) as { field?: string }).field]).toEqual([400, "v"])
    }
    for (const [name, value] of [
      ["segmenter", "paragraph"],
      ["length", "0"],
      ["start", "-1"],
      ["force", "maybe"],
    ]) {
      const answer = await server.call("GET", `/video/${videoId}/transcription?${name}=${value}`)
      expect([answer.status, answer.body.field], `transcription ${name}=${value}`).toEqual([400, name])
    }
    // A display-only export has no spoken words: every route asking for them says so.
    const { videoId: silentVideo } = await exportedSession(
      "video-display",
      Date.now() - 60_000,
      false,
      "display:1",
      screen,
    )
    for (const [method, route, body] of [
      ["POST", "index", { index_type: "spoken_word" }],
      ["GET", "index", undefined],
      ["GET", "transcription", undefined],
      ["POST", "transcription", { force: false }],
    ] as const) {
      const answer = await server.call(method, `/video/${silentVideo}/${route}`, body)
      expect([answer.status, answer.body.error_code, answer.body.field], `${method} ${route}`).toEqual([
        409,
        "no_transcript",
        "video_id",
      ])
    }
    const silent = await (
      await connect({ apiKey: server.apiKey, baseUrl: server.base }).getCollection()
    ).getVideo(silentVideo)
    await expect(silent.getTranscript()).rejects.toThrow()
    const unknown = await server.call("POST", "/video/m-NOSUCHVIDEO0000/search", { query: "budget" })
    expect([unknown.status, unknown.body.error_code, unknown.body.field]).toEqual([
      404,
      "not_found",
      "video_id",
    ])
    const hostile = await server.call("POST", "/video/m-..%2A/search", { query: "budget" })
    expect([hostile.status, hostile.body.field]).toEqual([400, "video_id"])
    for (const file of ["index.m3u8", "video.mp4"]) {
      const badTimeline = await fetch(`${server.base}/media/${videoId}/${file}?timeline=9-3`)
      expect([badTimeline.status, ((await badTimeline.json()) as { field?: string }).field]).toEqual([
        400,
        "timeline",
      ])
    }
    // The MP4 of a range answers byte ranges, as the whole file does.
    const rangeBytes = await fetch(`${server.base}/media/${videoId}/video.mp4?timeline=0-2`, {
      headers: { range: "bytes=0-99" },
    })
    expect([rangeBytes.status, (await rangeBytes.arrayBuffer()).byteLength]).toEqual([206, 100])
    // A range of the whole video plays.
    const whole = await server.data("POST", `/video/${videoId}/stream`, { timeline: [[0, 4]] })
    expect(whole.timeline).toEqual([[0, 4]])
    expect((await fetch(whole.stream_url as string)).status).toBe(200)
  }, 300_000)
})
