/**
 * `capture mcp`: an MCP server (the official `@modelcontextprotocol/sdk`) on stdin/stdout, so an
 * AI agent can search and read what was captured. It is a client of a Capture server's HTTP API,
 * like `capture record`: the credential it is given (an API key, or a client token of one end
 * user) scopes every tool exactly as it scopes the API, and it runs wherever the agent does.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js"
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js"
import { Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { describe, unavailable, usage } from "../Exit.js"
import { CaptureApiError, CaptureHttp } from "./CaptureHttp.js"
import { registerCaptureTools } from "./CaptureTools.js"

const VERSION = "0.1.0"

/** Where `capture serve` listens unless told otherwise. */
export const DEFAULT_SERVER_URL = "http://127.0.0.1:8080"

/** Serves the tools over stdio until the client closes stdin. */
export const runMcpServer = async (http: CaptureHttp): Promise<void> => {
  const server = new McpServer(
    { name: "capture", version: VERSION },
    {
      instructions:
        "Tools over Capture's recorded sessions: list_sessions finds session ids; search finds what was said or shown; " +
        "read_transcript and read_scenes read a session's words and screens for a time range; list_alerts shows alerts and when they fired. " +
        "Times are ISO 8601 (UTC).",
    },
  )
  registerCaptureTools(server, http)
  const closed = new Promise<void>((resolve) => {
    server.server.onclose = () => resolve()
  })
  const transport = new StdioServerTransport()
  // The client going away ends the server (stdin closes with it).
  process.stdin.once("end", () => void server.close())
  await server.connect(transport)
  await closed
}

export const mcpCommand = Command.make(
  "mcp",
  {
    server: Flag.String("server").pipe(
      Flag.withDescription(
        `The capture server's base URL (default: $CAPTURE_SERVER_URL, else ${DEFAULT_SERVER_URL})`,
      ),
      Flag.optional,
    ),
    apiKey: Flag.String("api-key").pipe(
      Flag.withDescription(
        "The credential every tool uses: an API key (sk-…) or a client token (st-…, one end user's sessions only); default: $CAPTURE_API_KEY",
      ),
      Flag.optional,
    ),
  },
  (flags) =>
    Effect.gen(function* () {
      const baseUrl =
        Option.getOrUndefined(flags.server) ?? process.env.CAPTURE_SERVER_URL ?? DEFAULT_SERVER_URL
      if (!/^https?:\/\/[^/]/.test(baseUrl))
        return yield* usage(`--server: expected an http(s) URL, got ${baseUrl}`)
      const token = Option.getOrUndefined(flags.apiKey) ?? process.env.CAPTURE_API_KEY ?? ""
      if (!/^(sk|st)-\S+$/.test(token)) {
        return yield* usage(
          "--api-key (or CAPTURE_API_KEY): expected an API key (sk-…) or a client token (st-…)",
        )
      }
      const http = new CaptureHttp(baseUrl, token)
      // Checked before serving, so a wrong key or URL is an error at start, not in every tool call.
      yield* Effect.tryPromise({
        try: () => http.data("GET", "/collection/default"),
        catch: (error) => error,
      }).pipe(
        Effect.catch((error) =>
          error instanceof CaptureApiError && error.status === 403
            ? Effect.void // A client token may not read the collection; its tools still work.
            : Effect.fail(
                error instanceof CaptureApiError && error.status === 401
                  ? usage(`the server at ${baseUrl} refused the credential: ${error.message}`)
                  : unavailable(describe(error)),
              ),
        ),
      )
      yield* Effect.tryPromise({
        try: () => runMcpServer(http),
        catch: (error) => unavailable(`mcp: ${describe(error)}`),
      })
    }),
).pipe(
  Command.withDescription("Serve MCP tools (search, transcripts, scenes, alerts) over stdio for an AI agent"),
)
