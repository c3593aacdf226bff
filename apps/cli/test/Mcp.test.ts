/**
 * `capture mcp` with the MCP SDK's own client (`Client` + `StdioClientTransport` spawning the
 * built command) against a real `capture serve`: a session's mic recorded from known speech
 * (Festival), transcribed by the local engine, with an audio index of one sentence per batch and
 * an alert on it, all through the API; then every tool, its refusals, and a client token's scope.
 */
import type { SessionId } from "@capture/protocol"
import {
  festivalAvailable,
  getFreePort,
  type NatsServerHandle,
  type SpeechRecording,
  speechRecording,
  startNatsServer,
} from "@capture/testkit"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killIfRunning, MAIN, runCli } from "./cli.js"
import { type CaptureServer, pollUntil, startCaptureServer } from "./endToEnd.js"
import { ffmpeg } from "./media.js"
import { uploadSegment } from "./transcription.js"

const SENTENCES = [
  "Let's schedule the meeting for Thursday.",
  "The budget discussion is next week.",
  "Please send the report to the team before Friday.",
]

let nats: NatsServerHandle
let server: CaptureServer
let recording: SpeechRecording
const clients: Array<Client> = []

beforeAll(async () => {
  nats = await startNatsServer()
  server = await startCaptureServer(nats.url)
  if (festivalAvailable()) recording = await speechRecording(ffmpeg, SENTENCES, { leadMs: 3_000 })
}, 120_000)
afterAll(async () => {
  for (const client of clients) await client.close().catch(() => undefined)
  await killIfRunning(server?.process)
  await nats?.stop()
})

/** An MCP client of `capture mcp` run as a child process with `token`. */
const mcpClient = async (token: string): Promise<Client> => {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [MAIN, "mcp", "--server", server.base, "--api-key", token],
    env: { PATH: process.env.PATH ?? "" },
    stderr: "pipe",
  })
  const client = new Client({ name: "capture-test", version: "1.0.0" })
  await client.connect(transport)
  clients.push(client)
  return client
}

const call = async (client: Client, name: string, args: Record<string, unknown>) =>
  (await client.callTool({ name, arguments: args })) as CallToolResult

const textOf = (result: CallToolResult): string =>
  result.content.map((part) => (part.type === "text" ? part.text : "")).join("\n")

/** A tool's refusal: an error result (or, for what its schema refuses, an error thrown by the client). */
const refusalOf = async (client: Client, name: string, args: Record<string, unknown>): Promise<string> => {
  try {
    const result = await call(client, name, args)
    expect(result.isError, textOf(result)).toBe(true)
    return textOf(result)
  } catch (error) {
    return error instanceof Error ? error.message : String(error)
  }
}

describe.skipIf(!festivalAvailable())("capture mcp (MCP SDK client over stdio)", () => {
  it("searches, reads transcripts and scenes for a time range, lists alerts; refuses bad input; scoped by its credential", async () => {
    // A recorded session, transcribed, an audio index (one sentence a batch) and an alert on it.
    const startMs = Date.now() - 60_000
    const created = await server.data("POST", "/collection/default/capture/session", {
      end_user_id: "mcp-user",
    })
    const sessionId = created.id as SessionId
    await server.data("POST", "/capture/session/start", {
      session_id: sessionId,
      channels: [{ channel_id: "mic:default" }],
    })
    await uploadSegment(server, sessionId, recording, 0, startMs)
    const view = await pollUntil(
      "rtstreams",
      () => server.data("GET", `/collection/default/capture/session/${sessionId}`),
      (session) => (session.rtstreams as ReadonlyArray<unknown>).length === 1,
    )
    const mic = (view.rtstreams as ReadonlyArray<{ rtstream_id: string }>)[0]?.rtstream_id ?? ""
    const index = await server.data("POST", `/rtstream/${mic}/index/scene`, {
      extraction_type: "transcript",
      extraction_config: { segmenter: "sentence", segmentation_value: 1 },
      name: "sentences",
    })
    const indexId = index.rtstream_index_id as string
    const event = await server.data("POST", "/rtstream/event", {
      event_prompt: "someone talks about the budget",
      label: "budget",
    })
    const alert = await server.data("POST", `/rtstream/${mic}/index/${indexId}/alert`, {
      event_id: event.event_id,
    })
    for (let i = 1; i < recording.segments.length; i++)
      await uploadSegment(server, sessionId, recording, i, startMs)
    await pollUntil(
      "the audio index's scenes",
      () => server.data("GET", `/rtstream/${mic}/index/scene/${indexId}`),
      (page) => page.total === SENTENCES.length,
      { timeoutMs: 120_000, intervalMs: 500 },
    )

    const client = await mcpClient(server.apiKey)
    const { tools } = await client.listTools()
    expect(tools.map((t) => t.name).sort()).toEqual([
      "list_alerts",
      "list_sessions",
      "read_scenes",
      "read_transcript",
      "search",
    ])
    for (const tool of tools) expect(tool.inputSchema.type).toBe("object")

    const sessions = await call(client, "list_sessions", {})
    expect(sessions.structuredContent?.sessions).toEqual([
      expect.objectContaining({ session_id: sessionId, end_user_id: "mcp-user", channels: ["mic:default"] }),
    ])

    // Search: the spoken sentence, in its session and channel, within the recording.
    const found = await call(client, "search", { query: "budget discussion", kind: "spoken" })
    const best = (
      found.structuredContent?.results as ReadonlyArray<Record<string, string | number>> | undefined
    )?.[0]
    expect(best).toMatchObject({
      session_id: sessionId,
      rtstream_id: mic,
      channel: "mic:default",
      kind: "transcript",
    })
    expect(String(best?.text)).toMatch(/budget|discussion/i)
    const spoken = recording.sentences[1] as { startMs: number; endMs: number }
    expect(Math.abs(Date.parse(String(best?.start)) - (startMs + spoken.startMs))).toBeLessThan(400)
    expect(String(best?.stream_url)).toMatch(/\/clip\/.*index\.m3u8\?exp=/)
    expect(textOf(found)).toContain(sessionId)
    expect(textOf(await call(client, "search", { query: "xylophone" }))).toMatch(/Nothing found/)

    // The transcript of a range holding only the second sentence (times as ISO and as Unix seconds).
    const around = {
      start: new Date(startMs + spoken.startMs - 500).toISOString(),
      end: (startMs + spoken.endMs + 500) / 1000,
    }
    const transcript = await call(client, "read_transcript", { session_id: sessionId, ...around })
    const segments = transcript.structuredContent?.segments as ReadonlyArray<{
      text: string
      channel: string
    }>
    expect(segments).toHaveLength(1)
    expect(segments[0]?.text).toMatch(/budget|discussion/i)
    const whole = await call(client, "read_transcript", { rtstream_id: mic })
    expect(whole.structuredContent?.segments).toHaveLength(SENTENCES.length)

    // Scenes: every batch of the audio index, or those of the range.
    const scenes = await call(client, "read_scenes", { session_id: sessionId })
    expect(scenes.structuredContent?.scenes).toHaveLength(SENTENCES.length)
    const scenesAround = await call(client, "read_scenes", {
      session_id: sessionId,
      index_id: indexId,
      ...around,
    })
    expect(scenesAround.structuredContent?.scenes).toEqual([
      expect.objectContaining({ index_id: indexId, index_name: "sentences", text: segments[0]?.text }),
    ])

    // Alerts: the one on the index, fired once, by the budget sentence.
    const alerts = await call(client, "list_alerts", { session_id: sessionId })
    const listed = alerts.structuredContent?.alerts as ReadonlyArray<{
      alert_id: string
      label: string
      status: string
      fired: ReadonlyArray<{ text: string; confidence: number }>
    }>
    expect(listed).toHaveLength(1)
    expect(listed[0]).toMatchObject({ alert_id: alert.alert_id, label: "budget", status: "enabled" })
    expect(listed[0]?.fired).toHaveLength(1)
    expect(listed[0]?.fired[0]?.text).toMatch(/budget/i)

    // Refusals: clear messages, never a crash of the server.
    expect(await refusalOf(client, "read_transcript", {})).toMatch(/session_id or rtstream_id/)
    expect(await refusalOf(client, "read_transcript", { session_id: "cap-NOSUCHSESSION000" })).toMatch(
      /404 session_not_found/,
    )
    expect(await refusalOf(client, "read_transcript", { rtstream_id: mic, start: "last tuesday" })).toMatch(
      /start:/,
    )
    expect(
      await refusalOf(client, "read_scenes", { rtstream_id: mic, index_id: "rsi-NOSUCHINDEX00" }),
    ).toMatch(/index_id/)
    expect(await refusalOf(client, "search", { query: "" })).toMatch(/query/)
    expect(await refusalOf(client, "read_transcript", { session_id: "../etc" })).toMatch(/session_id|cap-/)
    expect((await call(client, "list_sessions", {})).isError).toBeFalsy()

    // A client token of the session's end user reads it; another end user's finds nothing of it.
    const tokenOf = async (user: string) =>
      (await server.data("POST", "/capture/session/token", { user_id: user })).token as string
    const owner = await mcpClient(await tokenOf("mcp-user"))
    const ownTranscript = await call(owner, "read_transcript", { session_id: sessionId })
    expect(ownTranscript.structuredContent?.segments).toHaveLength(SENTENCES.length)
    const stranger = await mcpClient(await tokenOf("someone-else"))
    const theirs = await call(stranger, "search", { query: "budget discussion" })
    expect(theirs.structuredContent?.results).toEqual([])
    expect(await refusalOf(stranger, "read_transcript", { rtstream_id: mic })).toMatch(
      /404 rtstream_not_found/,
    )
    expect(await refusalOf(stranger, "read_scenes", { session_id: sessionId })).toMatch(
      /404 session_not_found/,
    )
  }, 300_000)

  it("refuses a wrong credential or server at start", async () => {
    const wrong = await runCli(["mcp", "--server", server.base, "--api-key", "sk-not-a-key-of-this-server"])
    expect(wrong.code).toBe(2)
    expect(wrong.stderr).toMatch(/refused the credential: 401/)
    const missing = await runCli(["mcp", "--server", server.base], { CAPTURE_API_KEY: "" })
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/--api-key/)
    // A port nothing listens on.
    const nobody = await runCli([
      "mcp",
      "--server",
      `http://127.0.0.1:${await getFreePort()}`,
      "--api-key",
      server.apiKey,
    ])
    expect(nobody.code).toBe(3)
    expect(nobody.stderr).toMatch(/did not answer: .*ECONNREFUSED/)
    // Three process starts: seconds each on a loaded machine.
  }, 180_000)
})
