/**
 * Identifiers. Every id is a prefixed, time-sortable string (`cap-01JC…`): the prefix says what
 * it names, the body is a ULID-like value so that sorting ids sorts by creation time.
 */
import { createHash, randomBytes } from "node:crypto"
import { Schema } from "effect"

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
const CROCKFORD_CODES = Uint8Array.from(CROCKFORD, (c) => c.charCodeAt(0))

// Ids are minted on every command: draw randomness in blocks, already spelled in base32, rather
// than one syscall and sixteen lookups per id.
const RANDOM_BLOCK = 4096
let randomChars = ""
let offset = RANDOM_BLOCK
const randomBase32 = (length: number): string => {
  if (offset + length > RANDOM_BLOCK) {
    // Spelled in place and decoded once: one flat string, not a chain of 4,096 concatenations.
    const bytes = randomBytes(RANDOM_BLOCK)
    for (let i = 0; i < bytes.length; i++) bytes[i] = CROCKFORD_CODES[(bytes[i] ?? 0) & 31] ?? 0
    randomChars = bytes.toString("latin1")
    offset = 0
  }
  offset += length
  return randomChars.slice(offset - length, offset)
}

let lastMs = -1
let lastTime = ""

/** A 26-character Crockford base32 body: 48 bits of milliseconds, then 80 random bits. */
export const makeIdBody = (now: number = Date.now()): string => {
  if (now !== lastMs) {
    let time = ""
    let ms = now
    for (let i = 0; i < 10; i++) {
      time = CROCKFORD[ms % 32] + time
      ms = Math.floor(ms / 32)
    }
    lastMs = now
    lastTime = time
  }
  return lastTime + randomBase32(16)
}

const prefixedString = (prefix: string) =>
  Schema.String.check(
    Schema.isPattern(new RegExp(`^${prefix}[A-Za-z0-9_-]{1,64}$`), {
      message: `expected an id starting with "${prefix}"`,
    }),
  )

/** A capture session: `cap-…`. */
export const SessionId = prefixedString("cap-").pipe(Schema.brand("SessionId"))
export type SessionId = typeof SessionId.Type
/** A client token's id (not the token itself): `tok-…`. */
export const TokenId = prefixedString("tok-")
export type TokenId = typeof TokenId.Type
/** A real-time stream, one per started channel: `rts-…`. */
export const RtstreamId = prefixedString("rts-").pipe(Schema.brand("RtstreamId"))
export type RtstreamId = typeof RtstreamId.Type
/** An index of an rtstream (visual or audio), `rsi-…`. */
export const SceneIndexId = prefixedString("rsi-").pipe(Schema.brand("SceneIndexId"))
export type SceneIndexId = typeof SceneIndexId.Type
/** A detection event (a prompt and a label alerts watch for), `aev-…`. */
export const DetectionEventId = prefixedString("aev-").pipe(Schema.brand("DetectionEventId"))
export type DetectionEventId = typeof DetectionEventId.Type
/** An alert on an index, `alr-…`. */
export const AlertId = prefixedString("alr-").pipe(Schema.brand("AlertId"))
export type AlertId = typeof AlertId.Type
/** An exported video: `m-…` (the muxed video, or the raw asset of a display or camera). */
export const VideoId = prefixedString("m-").pipe(Schema.brand("VideoId"))
export type VideoId = typeof VideoId.Type
/** An exported audio asset (the raw asset of a mic or system audio channel): `a-…`. */
export const AudioId = prefixedString("a-").pipe(Schema.brand("AudioId"))
export type AudioId = typeof AudioId.Type
/** The raw asset of one exported channel: `m-…` for video, `a-…` for audio. */
export const AssetId = Schema.Union([VideoId, AudioId])
export type AssetId = typeof AssetId.Type
/** A persisted session event: `evt-…`; stable, so webhook receivers can deduplicate by it. */
export const EventId = prefixedString("evt-").pipe(Schema.brand("EventId"))
export type EventId = typeof EventId.Type
/** An account API key: `sk-…`. */
export const ApiKey = prefixedString("sk-").pipe(Schema.brand("ApiKey"))
export type ApiKey = typeof ApiKey.Type
/** A client (desktop recorder) token: `st-…`. */
export const ClientToken = prefixedString("st-").pipe(Schema.brand("ClientToken"))
export type ClientToken = typeof ClientToken.Type

/** A collection: `c-…`, or `default`, which every account has. */
export const CollectionId = Schema.String.check(
  Schema.isPattern(/^(default|c-[A-Za-z0-9_-]{1,64})$/, {
    message: 'expected "default" or an id starting with "c-"',
  }),
).pipe(Schema.brand("CollectionId"))
export type CollectionId = typeof CollectionId.Type

/**
 * The id of a command, used as JetStream's `Nats-Msg-Id`: a client retrying a command with the
 * same id gets it applied once.
 */
export const CommandId = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(128)).pipe(
  Schema.brand("CommandId"),
)
export type CommandId = typeof CommandId.Type

/** The default collection every account owns. */
export const DEFAULT_COLLECTION = "default" as CollectionId

/** Fresh ids. */
export const newSessionId = (now?: number): SessionId => `cap-${makeIdBody(now)}` as SessionId
export const newRtstreamId = (): RtstreamId => `rts-${makeIdBody()}` as RtstreamId
export const newSceneIndexId = (): SceneIndexId => `rsi-${makeIdBody()}` as SceneIndexId
export const newDetectionEventId = (): DetectionEventId => `aev-${makeIdBody()}` as DetectionEventId
export const newAlertId = (): AlertId => `alr-${makeIdBody()}` as AlertId
export const newVideoId = (): VideoId => `m-${makeIdBody()}` as VideoId
export const newEventId = (): EventId => `evt-${makeIdBody()}` as EventId
export const newCommandId = (): CommandId => `cmd-${makeIdBody()}` as CommandId

/**
 * The id of a session's rtstream for its `index`th channel (0–99): `rts-<session id body>-NN`.
 * Derived, so an rtstream leads to its session without an index to keep in step, and sorts with
 * it. Undefined when the session id is too long to carry (sessions this server mints never are).
 */
export const rtstreamIdOf = (sessionId: SessionId, index: number): RtstreamId | undefined => {
  const id = `rts-${sessionId.slice("cap-".length)}-${String(index).padStart(2, "0")}`
  return index >= 0 && index < 100 && id.length <= "rts-".length + 64 ? (id as RtstreamId) : undefined
}

const isSessionId = Schema.is(SessionId)

/**
 * The session an rtstream id names (`rtstreamIdOf` reversed); undefined for an id drawn at random
 * (rtstreams made before ids were derived) or one that names no valid session id.
 */
export const sessionIdOfRtstream = (rtstreamId: string): SessionId | undefined => {
  const match = /^rts-([A-Za-z0-9_-]+)-\d{2}$/.exec(rtstreamId)
  if (match === null) return undefined
  const sessionId = `cap-${match[1]}`
  return isSessionId(sessionId) ? sessionId : undefined
}

/**
 * The asset id of a channel's raw asset in the export `videoId`: `m-…` for a video channel, `a-…`
 * for audio. Derived, not drawn: the export's time part (so assets sort with their export), then
 * 80 bits of SHA-256 over (video id, channel id). An export re-run after a crash keeps its video
 * id, so it names its raw assets the same.
 */
export const rawAssetId = (videoId: VideoId, channelId: string, type: "audio" | "video"): AssetId => {
  const digest = createHash("sha256").update(`${videoId}\n${channelId}`).digest()
  let body = videoId.slice(2, 12)
  for (let i = 0; i < 16; i++) body += CROCKFORD[(digest[i] as number) & 31]
  return (type === "video" ? `m-${body}` : `a-${body}`) as AssetId
}
