/**
 * The MCP tools `capture mcp` offers an AI agent over what was captured: list sessions, search
 * what was said and seen, read a transcript or a scene list for a time range, list alerts (and
 * when they fired). Each tool is a few calls of the Capture HTTP API with the server's credential,
 * so the server's scoping (account, collection, a client token's end user) is the tools' scoping.
 * Answers are readable text for the model plus the same facts as `structuredContent`.
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js"
import { z } from "zod"
import { CaptureApiError, type CaptureHttp } from "./CaptureHttp.js"

/** At most this many transcript segments or scenes in one answer (the rest: narrow the range). */
export const MAX_ITEMS = 2_000
const PAGE_SIZE = 1_000

/** A tool's input was wrong in a way its schema cannot say (a time that does not parse). */
class ToolInputError extends Error {}

/**
 * Epoch ms of a time given as ISO 8601 (`2026-01-20T12:34:56Z`) or Unix seconds (a number, or
 * digits; values of 10^11 and more are taken as ms, as the API does).
 */
export const parseTime = (field: string, value: string | number): number => {
  const numeric =
    typeof value === "number" ? value : /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : null
  const ms = numeric === null ? Date.parse(value as string) : numeric < 1e11 ? numeric * 1000 : numeric
  if (!Number.isFinite(ms) || ms < 0) {
    throw new ToolInputError(
      `${field}: expected an ISO 8601 time (2026-01-20T12:34:56Z) or Unix seconds, got ${JSON.stringify(value)}`,
    )
  }
  return Math.round(ms)
}

const iso = (ms: number): string => new Date(ms).toISOString()

const Time = z
  .union([z.string().min(1).max(64), z.number().nonnegative()])
  .describe("ISO 8601 time (2026-01-20T12:34:56Z) or Unix seconds")
const CollectionIdInput = z
  .string()
  .regex(/^(default|c-[A-Za-z0-9_-]{1,64})$/, "a collection id: default or c-…")
  .default("default")
  .describe("The collection (default: default)")
const SessionIdInput = z
  .string()
  .regex(/^cap-[A-Za-z0-9_-]{1,64}$/, "a capture session id: cap-…")
  .describe("A capture session id (cap-…)")
const RtstreamIdInput = z
  .string()
  .regex(/^rts-[A-Za-z0-9_-]{1,64}$/, "an rtstream id: rts-…")
  .describe("An rtstream id (rts-…): one channel of a session")

/** The tool's answer: text for the model, the same facts structured. */
const answer = (text: string, structured: Record<string, unknown>): CallToolResult => ({
  content: [{ type: "text", text }],
  structuredContent: structured,
})

/** Runs a tool body; a refusal or bad input becomes an error result the model can read and correct. */
const guarded =
  <I>(body: (input: I) => Promise<CallToolResult>) =>
  async (input: I): Promise<CallToolResult> => {
    try {
      return await body(input)
    } catch (error) {
      if (!(error instanceof CaptureApiError) && !(error instanceof ToolInputError)) throw error
      return {
        isError: true,
        content: [{ type: "text", text: error.message }],
        structuredContent: {
          error: error.message,
          ...(error instanceof CaptureApiError
            ? { status: error.status, error_code: error.errorCode, field: error.field }
            : {}),
        },
      }
    }
  }

interface RtstreamRef {
  readonly rtstream_id: string
  /** The capture channel: `mic:default`, `display:1`. */
  readonly name: string
  readonly media_types: ReadonlyArray<string>
}

/** The rtstreams a tool reads: the one named, or those of the session (of a media type). */
const rtstreamsOf = async (
  http: CaptureHttp,
  input: {
    readonly rtstream_id?: string | undefined
    readonly session_id?: string | undefined
    readonly collection_id: string
  },
  media: "audio" | "video" | "any",
): Promise<ReadonlyArray<RtstreamRef>> => {
  if (input.rtstream_id !== undefined) {
    const rtstream = await http.data<{ id: string; name: string; media_types: ReadonlyArray<string> }>(
      "GET",
      `/rtstream/${encodeURIComponent(input.rtstream_id)}`,
    )
    return [{ rtstream_id: rtstream.id, name: rtstream.name, media_types: rtstream.media_types }]
  }
  if (input.session_id === undefined) throw new ToolInputError("give session_id or rtstream_id")
  // The rtstream list (not the session view) answers a client token too, for its own end user.
  const listed = await http.data<{
    results: ReadonlyArray<{ id: string; name: string; media_types: ReadonlyArray<string> }>
  }>("GET", "/rtstream", {
    query: { session_id: input.session_id, collection_id: input.collection_id, limit: 100, ordering: "name" },
  })
  return listed.results
    .map((r) => ({ rtstream_id: r.id, name: r.name, media_types: r.media_types }))
    .filter((r) => media === "any" || r.media_types.includes(media))
}

/** Every page of a paged read, up to `MAX_ITEMS` items; `truncated` when there were more. */
const allPages = async <T>(
  page: (n: number) => Promise<{ readonly items: ReadonlyArray<T>; readonly next_page: number | null }>,
): Promise<{ items: Array<T>; truncated: boolean }> => {
  const items: Array<T> = []
  for (let n: number | null = 1; n !== null; ) {
    const got = await page(n)
    items.push(...got.items)
    if (items.length >= MAX_ITEMS) return { items: items.slice(0, MAX_ITEMS), truncated: true }
    n = got.next_page
  }
  return { items, truncated: false }
}

const rangeQuery = (input: {
  readonly start?: string | number | undefined
  readonly end?: string | number | undefined
}) => {
  const start = input.start === undefined ? undefined : parseTime("start", input.start)
  const end = input.end === undefined ? undefined : parseTime("end", input.end)
  if (start !== undefined && end !== undefined && end < start) throw new ToolInputError("end: before start")
  return { start, end }
}

const KIND_INDEX_TYPE = { spoken: "spoken_word", visual: "visual", audio: "audio" } as const

/** Registers the tools on `server`, every call made with `http`'s credential. */
export const registerCaptureTools = (server: McpServer, http: CaptureHttp): void => {
  server.registerTool(
    "list_sessions",
    {
      title: "List capture sessions",
      description:
        "The collection's capture sessions, newest first: id, status, end user, when created, channels. Use the ids with the other tools.",
      inputSchema: {
        collection_id: CollectionIdInput,
        status: z
          .enum(["created", "starting", "active", "stopping", "stopped", "exported", "failed"])
          .optional()
          .describe("Only sessions in this status"),
        end_user_id: z.string().min(1).max(256).optional().describe("Only this end user's sessions"),
        limit: z.number().int().min(1).max(100).default(20).describe("How many (1–100, default 20)"),
      },
    },
    guarded(async (input) => {
      const list = await http.data<{
        sessions: ReadonlyArray<{
          id: string
          status: string
          end_user_id: string
          created_at: string
          channels: ReadonlyArray<{ channel_id: string }>
          exported_video_id?: string | null
        }>
      }>("GET", `/collection/${encodeURIComponent(input.collection_id)}/capture/session`, {
        query: { status: input.status, end_user_id: input.end_user_id, limit: input.limit },
      })
      const sessions = list.sessions.map((s) => ({
        session_id: s.id,
        status: s.status,
        end_user_id: s.end_user_id,
        created_at: s.created_at,
        channels: s.channels.map((c) => c.channel_id),
        exported_video_id: s.exported_video_id ?? null,
      }))
      const lines = sessions.map(
        (s) =>
          `${s.session_id}  ${s.status}  end user ${s.end_user_id}  created ${s.created_at}  ${s.channels.join(", ")}`,
      )
      return answer(
        sessions.length === 0 ? "No sessions." : [`${sessions.length} sessions:`, ...lines].join("\n"),
        { sessions },
      )
    }),
  )

  server.registerTool(
    "search",
    {
      title: "Search what was said and seen",
      description:
        "Full-text search (ranked, stemmed) over the collection's captured sessions: final transcripts of mics and system audio (spoken), " +
        "what displays showed (visual index results) and audio index summaries. Each result is a shot: session, channel, time range, text, " +
        "score 0–1 and a URL playing that range.",
      inputSchema: {
        query: z.string().min(1).max(1000).describe("Words to find, e.g. budget discussion"),
        collection_id: CollectionIdInput,
        kind: z
          .enum(["spoken", "visual", "audio"])
          .optional()
          .describe(
            "Only transcripts (spoken), screen text (visual) or audio index results (audio); default all",
          ),
        session_id: SessionIdInput.optional().describe("Only this session (cap-…)"),
        limit: z.number().int().min(1).max(100).default(10).describe("How many results (1–100, default 10)"),
      },
    },
    guarded(async (input) => {
      if (input.query.trim() === "") throw new ToolInputError("query: expected words to search for")
      const found = await http.data<{
        results: ReadonlyArray<{
          rtstream_id: string
          rtstream_name: string
          session_id: string
          start: number
          end: number
          text: string
          score: number
          kind: string
          stream_url?: string
        }>
      }>("POST", `/rtstream/collection/${encodeURIComponent(input.collection_id)}/search`, {
        body: {
          query: input.query,
          ...(input.kind === undefined ? {} : { index_type: KIND_INDEX_TYPE[input.kind] }),
          // Filtered to one session here: ask for more so the session's best are among them.
          result_threshold: input.session_id === undefined ? input.limit : 1000,
        },
      })
      const results = found.results
        .filter((r) => input.session_id === undefined || r.session_id === input.session_id)
        .slice(0, input.limit)
        .map((r) => ({
          session_id: r.session_id,
          rtstream_id: r.rtstream_id,
          channel: r.rtstream_name,
          kind: r.kind,
          start: iso(r.start * 1000),
          end: iso(r.end * 1000),
          text: r.text,
          score: r.score,
          stream_url: r.stream_url ?? null,
        }))
      const lines = results.map(
        (r) =>
          `[${r.start} – ${r.end}] ${r.session_id} ${r.channel} (${r.kind}, score ${r.score.toFixed(2)}): ${r.text}`,
      )
      return answer(
        results.length === 0
          ? `Nothing found for "${input.query}".`
          : [`${results.length} results for "${input.query}", best first:`, ...lines].join("\n"),
        { results },
      )
    }),
  )

  server.registerTool(
    "read_transcript",
    {
      title: "Read a transcript",
      description:
        "The final transcript of a session's audio channels (mic, system audio), or of one rtstream, for a time range, oldest first, " +
        "each segment with its channel and times.",
      inputSchema: {
        session_id: SessionIdInput.optional().describe("The session (cap-…): all its audio channels"),
        rtstream_id: RtstreamIdInput.optional(),
        collection_id: CollectionIdInput,
        start: Time.optional().describe("From this time (ISO 8601 or Unix seconds); default: the beginning"),
        end: Time.optional().describe("Until this time (ISO 8601 or Unix seconds); default: the end"),
      },
    },
    guarded(async (input) => {
      const range = rangeQuery(input)
      const rtstreams = await rtstreamsOf(http, input, "audio")
      const segments: Array<{
        channel: string
        rtstream_id: string
        start: string
        end: string
        startMs: number
        text: string
      }> = []
      let truncated = false
      for (const rtstream of rtstreams) {
        const read = await allPages(async (page) => {
          const got = await http.data<{
            segments: ReadonlyArray<{ text: string; start: number; end: number }>
            next_page: number | null
          }>("GET", `/rtstream/${encodeURIComponent(rtstream.rtstream_id)}/transcription`, {
            query: { page, page_size: PAGE_SIZE, start: range.start, end: range.end },
          })
          return { items: got.segments, next_page: got.next_page }
        })
        truncated ||= read.truncated
        for (const s of read.items) {
          segments.push({
            channel: rtstream.name,
            rtstream_id: rtstream.rtstream_id,
            start: iso(s.start),
            end: iso(s.end),
            startMs: s.start,
            text: s.text,
          })
        }
      }
      segments.sort((a, b) => a.startMs - b.startMs)
      const out = segments.map(({ startMs: _, ...segment }) => segment)
      const lines = out.map((s) => `[${s.start} – ${s.end}] ${s.channel}: ${s.text}`)
      const note = truncated
        ? `\n(first ${MAX_ITEMS} segments of a channel only: narrow the range for more)`
        : ""
      return answer(
        out.length === 0
          ? `No transcript in that range (${rtstreams.length} audio channels read: ${rtstreams.map((r) => r.name).join(", ") || "none"}).`
          : [`${out.length} transcript segments:`, ...lines].join("\n") + note,
        { segments: out, truncated },
      )
    }),
  )

  server.registerTool(
    "read_scenes",
    {
      title: "Read a scene list",
      description:
        "What a session's indexes recorded for a time range: each visual index's scenes (the text read on screen, or a model's " +
        "description) and each audio index's batches, oldest first, with their index, channel and times.",
      inputSchema: {
        session_id: SessionIdInput.optional().describe(
          "The session (cap-…): the indexes of all its channels",
        ),
        rtstream_id: RtstreamIdInput.optional(),
        index_id: z
          .string()
          .regex(/^rsi-[A-Za-z0-9_-]{1,64}$/, "an index id: rsi-…")
          .optional()
          .describe("Only this index (rsi-…)"),
        collection_id: CollectionIdInput,
        start: Time.optional().describe("From this time (ISO 8601 or Unix seconds)"),
        end: Time.optional().describe("Until this time (ISO 8601 or Unix seconds)"),
      },
    },
    guarded(async (input) => {
      const range = rangeQuery(input)
      const rtstreams = await rtstreamsOf(http, input, "any")
      const scenes: Array<{
        channel: string
        rtstream_id: string
        index_id: string
        index_name: string
        start: string
        end: string
        startS: number
        text: string
      }> = []
      let truncated = false
      let indexesRead = 0
      for (const rtstream of rtstreams) {
        const { scene_indexes } = await http.data<{
          scene_indexes: ReadonlyArray<{ rtstream_index_id: string; name: string }>
        }>("GET", `/rtstream/${encodeURIComponent(rtstream.rtstream_id)}/index/scene`)
        for (const index of scene_indexes) {
          if (input.index_id !== undefined && index.rtstream_index_id !== input.index_id) continue
          indexesRead++
          const read = await allPages(async (page) => {
            const got = await http.data<{
              scene_index_records: ReadonlyArray<{ start: number; end: number; text: string }>
              next_page: number | null
            }>(
              "GET",
              `/rtstream/${encodeURIComponent(rtstream.rtstream_id)}/index/scene/${encodeURIComponent(index.rtstream_index_id)}`,
              { query: { page, page_size: PAGE_SIZE, start: range.start, end: range.end } },
            )
            return { items: got.scene_index_records, next_page: got.next_page }
          })
          truncated ||= read.truncated
          for (const s of read.items) {
            scenes.push({
              channel: rtstream.name,
              rtstream_id: rtstream.rtstream_id,
              index_id: index.rtstream_index_id,
              index_name: index.name,
              start: iso(s.start * 1000),
              end: iso(s.end * 1000),
              startS: s.start,
              text: s.text,
            })
          }
        }
      }
      if (input.index_id !== undefined && indexesRead === 0) {
        throw new ToolInputError(
          `index_id: no index ${input.index_id} on ${rtstreams.map((r) => r.rtstream_id).join(", ")}`,
        )
      }
      scenes.sort((a, b) => a.startS - b.startS)
      const out = scenes.map(({ startS: _, ...scene }) => scene)
      const lines = out.map((s) => `[${s.start} – ${s.end}] ${s.channel} ${s.index_name}: ${s.text}`)
      const note = truncated
        ? `\n(first ${MAX_ITEMS} scenes of an index only: narrow the range for more)`
        : ""
      return answer(
        out.length === 0
          ? `No scenes in that range (${indexesRead} indexes read).`
          : [`${out.length} scenes:`, ...lines].join("\n") + note,
        { scenes: out, truncated },
      )
    }),
  )

  server.registerTool(
    "list_alerts",
    {
      title: "List alerts",
      description:
        "The alerts on a session's (or an rtstream's) indexes: the event each watches for, its label and whether it is enabled, " +
        "and each time it fired (the result's time range, text and confidence).",
      inputSchema: {
        session_id: SessionIdInput.optional().describe(
          "The session (cap-…): alerts on all its channels' indexes",
        ),
        rtstream_id: RtstreamIdInput.optional(),
        collection_id: CollectionIdInput,
        start: Time.optional().describe("Only firings from this time (ISO 8601 or Unix seconds)"),
        end: Time.optional().describe("Only firings until this time (ISO 8601 or Unix seconds)"),
      },
    },
    guarded(async (input) => {
      const range = rangeQuery(input)
      const rtstreams = await rtstreamsOf(http, input, "any")
      const alerts: Array<{
        alert_id: string
        event_id: string
        label: string
        status: string
        channel: string
        rtstream_id: string
        index_id: string
        fired: Array<{ start: string; end: string; text: string; confidence: number; explanation: string }>
      }> = []
      for (const rtstream of rtstreams) {
        const rts = encodeURIComponent(rtstream.rtstream_id)
        const { scene_indexes } = await http.data<{
          scene_indexes: ReadonlyArray<{ rtstream_index_id: string }>
        }>("GET", `/rtstream/${rts}/index/scene`)
        for (const index of scene_indexes) {
          const idx = encodeURIComponent(index.rtstream_index_id)
          const listed = await http.data<{
            alerts: ReadonlyArray<{ alert_id: string; event_id: string; label: string; status: string }>
          }>("GET", `/rtstream/${rts}/index/${idx}/alert`)
          if (listed.alerts.length === 0) continue
          // When each fired: the results that fired it carry it (`metadata.alerts`).
          const scenes = await allPages(async (page) => {
            const got = await http.data<{
              scene_index_records: ReadonlyArray<{
                start: number
                end: number
                text: string
                metadata: {
                  alerts?: ReadonlyArray<{ alert_id: string; confidence: number; explanation: string }>
                }
              }>
              next_page: number | null
            }>("GET", `/rtstream/${rts}/index/scene/${idx}`, {
              query: { page, page_size: PAGE_SIZE, start: range.start, end: range.end },
            })
            return { items: got.scene_index_records, next_page: got.next_page }
          })
          for (const alert of listed.alerts) {
            alerts.push({
              ...alert,
              channel: rtstream.name,
              rtstream_id: rtstream.rtstream_id,
              index_id: index.rtstream_index_id,
              fired: scenes.items.flatMap((scene) =>
                (scene.metadata.alerts ?? [])
                  .filter((fired) => fired.alert_id === alert.alert_id)
                  .map((fired) => ({
                    start: iso(scene.start * 1000),
                    end: iso(scene.end * 1000),
                    text: scene.text,
                    confidence: fired.confidence,
                    explanation: fired.explanation,
                  })),
              ),
            })
          }
        }
      }
      const lines = alerts.flatMap((a) => [
        `${a.alert_id} "${a.label}" (${a.status}) on ${a.channel} index ${a.index_id}: fired ${a.fired.length} times`,
        ...a.fired.map((f) => `  [${f.start} – ${f.end}] confidence ${f.confidence.toFixed(2)}: ${f.text}`),
      ])
      return answer(alerts.length === 0 ? "No alerts." : [`${alerts.length} alerts:`, ...lines].join("\n"), {
        alerts,
      })
    }),
  )
}
