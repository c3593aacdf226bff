/**
 * Flags shared by several commands, and the value parsers behind them.
 */
import { Option } from "effect"
import { Flag } from "effect/cli"

/** The NATS servers a tool connects to when neither `--nats` nor `NATS_URL` says otherwise. */
export const DEFAULT_NATS_URL = "nats://127.0.0.1:4222"

/** `--nats <url>`: NATS servers, comma-separated; falls back to `NATS_URL`, then the default. */
export const natsFlag = Flag.String("nats").pipe(
  Flag.withDescription(`NATS server URL(s), comma-separated (default: $NATS_URL, else ${DEFAULT_NATS_URL})`),
  Flag.optional,
)

/** `--json`: one JSON document on stdout instead of text. */
export const jsonFlag = Flag.Boolean("json").pipe(
  Flag.withDescription("Print one JSON document instead of text"),
  Flag.withDefault(false),
)

/** Splits a `NATS_URL`-style list into server URLs. */
export const parseServers = (value: string): ReadonlyArray<string> =>
  value
    .split(",")
    .map((server) => server.trim())
    .filter((server) => server !== "")

/** The servers for a tool: `--nats`, else `NATS_URL`, else the local default. */
export const toolServers = (flag: Option.Option<string>): ReadonlyArray<string> => {
  const value = Option.getOrUndefined(flag) ?? process.env.NATS_URL
  const servers = value === undefined ? [] : parseServers(value)
  return servers.length > 0 ? servers : [DEFAULT_NATS_URL]
}

const units: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }

/** Parses `60s`, `1.5m`, `500ms`, `2h` or a bare number of milliseconds into milliseconds. */
export const parseDuration = (input: string): number => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(input)
  if (match === null) throw new Error(`"${input}" is not a duration (e.g. 60s, 1.5m, 500ms)`)
  const millis = Number(match[1]) * (units[match[2] ?? "ms"] ?? 1)
  if (millis <= 0) throw new Error(`duration must be positive: "${input}"`)
  return Math.round(millis)
}

/** A duration flag (`--start-timeout 60s`), in milliseconds. */
export const durationFlag = (name: string, fallback: string, description: string): Flag.Flag<number> =>
  Flag.String(name).pipe(
    Flag.withDescription(`${description} (default ${fallback})`),
    Flag.withDefault(fallback),
    Flag.mapTryCatch(parseDuration, (error) => (error instanceof Error ? error.message : String(error))),
  )
