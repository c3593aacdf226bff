/**
 * `capture channels`: prints the channels this machine offers, one per line, as
 * `<id>  <type>  <name>` with the primary display marked.
 */
import { CaptureClient } from "../CaptureClient.js"
import type { Channels } from "../Channels.js"

/** What `capture channels` takes. */
export interface ListChannelsOptions {
  /** List the synthetic channels instead of devices. */
  readonly synthetic?: boolean
  readonly ffmpegPath?: string
  /** Where the table goes (default `process.stdout`). */
  readonly stdout?: NodeJS.WritableStream
}

/** Prints the channels and returns them. */
export const listChannelsCommand = async (options: ListChannelsOptions = {}): Promise<Channels> => {
  const client = new CaptureClient({
    clientToken: "st-unused",
    baseUrl: "http://127.0.0.1",
    ...(options.synthetic ? { synthetic: true } : {}),
    ...(options.ffmpegPath === undefined ? {} : { ffmpegPath: options.ffmpegPath }),
  })
  const channels = await client.listChannels()
  const out = options.stdout ?? process.stdout
  const all = channels.all()
  if (all.length === 0) {
    out.write("no channels found (no X display, no PulseAudio server); `--synthetic` records test sources\n")
    return channels
  }
  const width = Math.max(...all.map((channel) => channel.id.length))
  for (const channel of all) {
    const flags = channel.isPrimary ? "  (primary)" : ""
    out.write(`${channel.id.padEnd(width)}  ${channel.type.padEnd(5)}  ${channel.name}${flags}\n`)
  }
  return channels
}
