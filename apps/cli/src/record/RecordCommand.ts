/**
 * `capture record` and `capture channels`: the recorder (`@capture/recorder`) from the command
 * line. Flags are parsed here; capturing, spooling and uploading are the recorder's.
 */
import { listChannelsCommand, parseChannelList, recordCommand } from "@capture/recorder/cli"
import { Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { describe, failed, usage } from "../Exit.js"
import { parseDuration } from "../Flags.js"

const syntheticFlag = Flag.Boolean("synthetic").pipe(
  Flag.withDescription(
    "Record test sources (a clock pattern flashing each second, tones beeping each second)",
  ),
  Flag.withDefault(false),
)

export const recordCommandLine = Command.make(
  "record",
  {
    server: Flag.String("server").pipe(
      Flag.withDescription("The capture server's base URL, e.g. http://127.0.0.1:8080"),
    ),
    token: Flag.String("token").pipe(Flag.withDescription("A client token (st-…) of the session's account")),
    session: Flag.String("session").pipe(
      Flag.withDescription("The session to record (cap-…), created beforehand"),
    ),
    channels: Flag.String("channels").pipe(
      Flag.withDescription(
        "Comma-separated channel ids (default: the default mic, display and system audio)",
      ),
      Flag.optional,
    ),
    primary: Flag.String("primary").pipe(
      Flag.withDescription("The primary display (default: the first)"),
      Flag.optional,
    ),
    synthetic: syntheticFlag,
    duration: Flag.String("duration").pipe(
      Flag.withDescription("Stop after this long (30s, 5m); default: until Ctrl-C"),
      Flag.optional,
    ),
    startRetry: Flag.String("start-retry").pipe(
      Flag.withDescription(
        "How long to keep retrying the start while the server is unreachable (default 5m; a resumed recording keeps its spool meanwhile)",
      ),
      Flag.optional,
    ),
    spool: Flag.String("spool").pipe(
      Flag.withDescription("Spool folder for segments not yet uploaded (default ~/.capture/spool)"),
      Flag.optional,
    ),
  },
  (flags) =>
    Effect.gen(function* () {
      const durationText = Option.getOrUndefined(flags.duration)
      const durationMs = yield* Effect.try({
        try: () => (durationText === undefined ? undefined : parseDuration(durationText)),
        catch: (error) => usage(describe(error)),
      })
      const startRetryText = Option.getOrUndefined(flags.startRetry)
      const startRetryMs = yield* Effect.try({
        try: () => (startRetryText === undefined ? undefined : parseDuration(startRetryText)),
        catch: (error) => usage(`--start-retry: ${describe(error)}`),
      })
      const channels = Option.getOrUndefined(flags.channels)
      const primary = Option.getOrUndefined(flags.primary)
      const spool = Option.getOrUndefined(flags.spool)
      // Uninterruptible: on Ctrl-C the runtime would interrupt this at once and exit, before the
      // recorder (which handles the signal itself) finished its segments and uploaded the rest.
      const summary = yield* Effect.uninterruptible(
        Effect.tryPromise({
          try: () =>
            recordCommand({
              server: flags.server,
              token: flags.token,
              session: flags.session,
              synthetic: flags.synthetic,
              ...(channels === undefined ? {} : { channels: parseChannelList(channels) }),
              ...(primary === undefined ? {} : { primaryVideoChannelId: primary }),
              ...(durationMs === undefined ? {} : { durationMs }),
              ...(spool === undefined ? {} : { spoolDir: spool }),
              ...(startRetryMs === undefined ? {} : { startRetryMs }),
            }),
          catch: (error) => failed(`record: ${describe(error)}`),
        }),
      )
      if (summary.stoppedBy === "capture_failed") {
        return yield* Effect.fail(failed("capture failed on every stored channel; the session was failed"))
      }
      if (summary.pendingSegments > 0) {
        return yield* Effect.fail(
          failed(
            `${summary.pendingSegments} segments are still in the spool; run record again to upload them`,
          ),
        )
      }
    }),
).pipe(Command.withDescription("Capture channels on this machine and stream them to a capture session"))

export const channelsCommandLine = Command.make("channels", { synthetic: syntheticFlag }, (flags) =>
  Effect.tryPromise({
    try: () => listChannelsCommand({ synthetic: flags.synthetic }),
    catch: (error) => failed(`channels: ${describe(error)}`),
  }).pipe(Effect.asVoid),
).pipe(
  Command.withDescription("List the channels this machine can capture (X11 displays, PulseAudio sources)"),
)
