/**
 * One session: its facts, live players of its channels while it records, its event timeline (each
 * stored event with the state after it, as `capture replay` prints it), its exports with players
 * and raw assets, its webhook deliveries with every attempt, and the AI results of its rtstreams.
 * It reloads when the WebSocket reports an event of the session or an AI result of its rtstreams.
 */
import type {
  AlertList,
  CaptureSession,
  HistoryStep,
  RawAssetView,
  SceneIndexList,
  ScenePage,
  SessionHistory,
  StreamingView,
  TranscriptPage,
  VideoView,
  WebhookDeliveryList,
} from "@capture/protocol"
import { api, credentials, describeError, path } from "./Api.js"
import { errorBox, fill, h, statusBadge, time } from "./Dom.js"
import type { LiveFeed } from "./LiveFeed.js"
import { attachPlayer, type PlayerSources } from "./Player.js"

const RECORDING = new Set(["starting", "active", "stopping"])
const AUDIO_CATEGORIES = new Set(["mic", "system_audio"])
// Always different after an event: not worth showing on every line.
const STAMPED = new Set(["sequence", "updated_at"])

const json = (value: unknown): string => JSON.stringify(value)
const pretty = (value: unknown): string => JSON.stringify(value, null, 2)
const isEmpty = (value: unknown): boolean =>
  value === null ||
  value === "" ||
  (Array.isArray(value) && value.length === 0) ||
  (typeof value === "object" && value !== null && Object.keys(value).length === 0)

/** The context fields an event changed (all those set, for the first), as `capture replay` shows them. */
const changes = (step: HistoryStep, previous: HistoryStep | undefined): string =>
  Object.entries(step.state.context)
    .filter(([key, value]) => {
      if (STAMPED.has(key)) return false
      if (previous === undefined) return !isEmpty(value)
      return json(value) !== json(previous.state.context[key])
    })
    .map(([key, value]) => `${key}: ${json(value)}`)
    .join("   ")

const timeline = (history: SessionHistory): HTMLElement => {
  const list = h(
    "ol",
    { class: "timeline", id: "timeline" },
    history.events.map((step, i) =>
      h(
        "li",
        { "data-sequence": step.sequence, "data-type": step.type },
        h(
          "div",
          { class: "head" },
          h("span", { class: "seq" }, `#${step.sequence}`),
          time(step.time),
          h("span", { class: "type" }, step.type),
          h("span", { class: "muted" }, "→"),
          statusBadge(step.state.status),
        ),
        h("div", { class: "changes mono" }, changes(step, history.events[i - 1])),
        h(
          "details",
          {},
          h("summary", { class: "muted" }, "event data and state after it"),
          h("pre", {}, pretty({ data: step.data, state: step.state })),
        ),
      ),
    ),
  )
  return h(
    "div",
    {},
    list,
    history.error === null
      ? null
      : errorBox(
          `The history stops at stream message ${history.error.stream_sequence}: ${history.error.reason}`,
        ),
  )
}

const player = (sources: PlayerSources, caption: ReadonlyArray<Node | string>, id: string) => {
  const video = h("video", {
    controls: true,
    playsinline: true,
    muted: true,
    preload: "auto",
    "data-player": id,
  })
  video.muted = true
  const box = h("div", { class: "player" }, video, h("div", { class: "caption" }, ...caption))
  return { box, detach: attachPlayer(video, sources) }
}

const facts = (session: CaptureSession): HTMLElement =>
  h(
    "dl",
    { class: "facts card" },
    h("dt", {}, "Status"),
    h("dd", { id: "session-status" }, statusBadge(session.status)),
    h("dt", {}, "End user"),
    h("dd", {}, session.end_user_id),
    h("dt", {}, "Collection"),
    h("dd", {}, session.collection_id),
    h("dt", {}, "Created"),
    h("dd", {}, time(session.created_at)),
    h("dt", {}, "Updated"),
    h("dd", {}, time(session.updated_at)),
    session.stop_reason === null ? null : [h("dt", {}, "Stop reason"), h("dd", {}, session.stop_reason)],
    session.error === null
      ? null
      : [h("dt", {}, "Error"), h("dd", {}, `${session.error.code}: ${session.error.message}`)],
    isEmpty(session.metadata)
      ? null
      : [h("dt", {}, "Metadata"), h("dd", { class: "mono" }, json(session.metadata))],
  )

const channelsTable = (session: CaptureSession): HTMLElement =>
  session.channels.length === 0
    ? h("p", { class: "empty" }, "No channels started yet.")
    : h(
        "table",
        {},
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Channel", "Name", "Type", "Stored", "Primary", "Paused"].map((t) => h("th", {}, t)),
          ),
        ),
        h(
          "tbody",
          {},
          session.channels.map((c) =>
            h(
              "tr",
              {},
              h("td", { class: "mono" }, c.channel_id),
              h("td", {}, c.name),
              h("td", {}, c.type),
              h("td", {}, c.store ? "yes" : "no"),
              h("td", {}, c.is_primary ? "yes" : ""),
              h("td", {}, session.paused_channel_ids.includes(c.channel_id) ? "paused" : ""),
            ),
          ),
        ),
      )

const webhooksTable = (deliveries: WebhookDeliveryList["deliveries"]): HTMLElement =>
  deliveries.length === 0
    ? h("p", { class: "empty" }, "No webhook deliveries (no callback_url, or nothing sent yet).")
    : h(
        "table",
        { id: "webhooks" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["#", "Event", "URL", "Status", "Attempts", "Next attempt"].map((t) => h("th", {}, t)),
          ),
        ),
        h(
          "tbody",
          {},
          deliveries.map((d) =>
            h(
              "tr",
              {},
              h("td", {}, d.sequence),
              h("td", {}, d.event),
              h("td", { class: "mono" }, d.url),
              h("td", {}, statusBadge(d.status)),
              h(
                "td",
                {},
                h(
                  "ol",
                  {},
                  d.attempts.map((a) =>
                    h(
                      "li",
                      {},
                      time(a.at),
                      ` → ${a.status_code ?? "no answer"} in ${Math.round(a.latency_ms)} ms`,
                      a.error === null ? null : h("span", { class: "muted" }, ` (${a.error})`),
                    ),
                  ),
                ),
              ),
              h("td", {}, time(d.next_attempt_at)),
            ),
          ),
        ),
      )

/** The AI results of one rtstream: transcript (audio), scene indexes with scenes and alerts. */
const aiSection = async (rtstream: CaptureSession["rtstreams"][number]): Promise<HTMLElement> => {
  const id = rtstream.rtstream_id
  const parts: Array<HTMLElement> = [h("h3", {}, `${rtstream.name} `, h("span", { class: "muted mono" }, id))]
  if (AUDIO_CATEGORIES.has(rtstream.channel_id)) {
    try {
      const transcript = await api<TranscriptPage>(`${path`/rtstream/${id}/transcription`}?page_size=200`)
      parts.push(
        h("p", { class: "muted" }, `Transcript: ${transcript.status}, ${transcript.total} segments`),
        transcript.segments.length === 0
          ? h("p", { class: "empty" }, "No transcript.")
          : h(
              "ul",
              { class: "transcript" },
              transcript.segments.map((s) =>
                h(
                  "li",
                  {},
                  h("span", { class: "muted" }, `${s.start.toFixed(1)}–${s.end.toFixed(1)} s `),
                  s.text,
                ),
              ),
            ),
      )
    } catch (error) {
      parts.push(h("p", { class: "muted" }, `Transcript: ${describeError(error)}`))
    }
  }
  try {
    const { scene_indexes } = await api<SceneIndexList>(path`/rtstream/${id}/index/scene`)
    if (scene_indexes.length === 0) parts.push(h("p", { class: "empty" }, "No scene indexes."))
    for (const index of scene_indexes) {
      const [scenes, alerts] = await Promise.all([
        api<ScenePage>(`${path`/rtstream/${id}/index/scene/${index.rtstream_index_id}`}?page_size=50`),
        api<AlertList>(path`/rtstream/${id}/index/${index.rtstream_index_id}/alert`),
      ])
      parts.push(
        h("h4", {}, `${index.name || index.kind} (${index.kind}, ${index.status})`),
        scenes.scene_index_records.length === 0
          ? h("p", { class: "empty" }, "No scenes yet.")
          : h(
              "ul",
              {},
              scenes.scene_index_records.map((r) =>
                h(
                  "li",
                  {},
                  h("span", { class: "muted" }, `${r.start.toFixed(1)}–${r.end.toFixed(1)} s `),
                  r.description || r.text,
                ),
              ),
            ),
        h(
          "p",
          {},
          "Alerts: ",
          alerts.alerts.length === 0
            ? "none"
            : alerts.alerts.map((a) => `${a.label} (${a.status})`).join(", "),
        ),
      )
    }
  } catch (error) {
    parts.push(h("p", { class: "muted" }, `Indexes: ${describeError(error)}`))
  }
  return h("div", { class: "card" }, ...parts)
}

/** Renders the session page into `root`; returns what stops its players and live updates. */
export const sessionPage = (root: HTMLElement, feed: LiveFeed, sessionId: string): (() => void) => {
  const collectionId = credentials.collectionId
  const header = h("div")
  const message = h("div")
  const sections = {
    facts: h("div"),
    channels: h("div"),
    live: h("div", { class: "grid", id: "live-players" }),
    exports: h("div", { id: "exports" }),
    timeline: h("div"),
    webhooks: h("div"),
    ai: h("div", { id: "ai" }),
  }
  // Hidden while the session cannot be shown (not found, or another account's).
  const content = h("div", { hidden: true })
  root.replaceChildren(h("p", {}, h("a", { href: "#/sessions" }, "← Sessions")), header, message, content)
  content.append(
    sections.facts,
    h("h2", {}, "Channels"),
    sections.channels,
    h("h2", {}, "Live"),
    sections.live,
    h("h2", {}, "Exports"),
    sections.exports,
    h("h2", {}, "Timeline"),
    sections.timeline,
    h("h2", {}, "Webhook deliveries"),
    sections.webhooks,
    h("h2", {}, "Transcript, scenes and alerts"),
    sections.ai,
  )
  fill(header, h("h1", { class: "mono" }, sessionId))

  // Players are kept across reloads while what they play is the same, so playback goes on.
  const players: Record<"live" | "exports", { key: string | undefined; detach: Array<() => void> }> = {
    live: { key: undefined, detach: [] },
    exports: { key: undefined, detach: [] },
  }
  const replacePlayers = async (
    which: "live" | "exports",
    key: string,
    render: (keep: (detach: () => void) => void) => Promise<ReadonlyArray<Node>>,
  ): Promise<void> => {
    if (players[which].key === key) return
    players[which].key = key
    const fresh: Array<() => void> = []
    const nodes = await render((detach) => fresh.push(detach))
    for (const detach of players[which].detach.splice(0, Number.POSITIVE_INFINITY, ...fresh)) detach()
    fill(sections[which], ...nodes)
  }

  let rtstreamIds = new Set<string>()
  let stopped = false
  let again: ReturnType<typeof setTimeout> | undefined

  const load = async (): Promise<void> => {
    let session: CaptureSession
    let history: SessionHistory
    try {
      ;[session, history] = await Promise.all([
        api<CaptureSession>(path`/collection/${collectionId}/capture/session/${sessionId}`),
        api<SessionHistory>(path`/collection/${collectionId}/capture/session/${sessionId}/history`),
      ])
    } catch (error) {
      message.replaceChildren(errorBox(`Cannot show session ${sessionId}: ${describeError(error)}`))
      return
    }
    if (stopped) return
    message.replaceChildren()
    content.hidden = false
    rtstreamIds = new Set(session.rtstreams.map((r) => r.rtstream_id))
    fill(sections.facts, facts(session))
    fill(sections.channels, channelsTable(session))
    fill(sections.timeline, timeline(history))
    // The history is read from the event stream, the session from the read model, which may lag it
    // by a moment: read again until they agree.
    const latest = history.events.at(-1)?.state.status
    if (latest !== undefined && latest !== session.status) {
      clearTimeout(again)
      again = setTimeout(() => void load(), 500)
    }

    const recording = RECORDING.has(session.status)
    const streaming = recording
      ? await api<StreamingView>(path`/capture/session/${sessionId}`).catch(() => undefined)
      : undefined
    const live = (streaming?.channels ?? []).filter((c) => c.stream_url !== null)
    await replacePlayers("live", live.map((c) => c.channel_id).join(","), async (keep) => {
      if (live.length === 0) {
        return [h("p", { class: "empty" }, recording ? "No media yet." : "Not recording.")]
      }
      return live.map((c) => {
        const made = player(
          { hls: c.stream_url ?? undefined },
          [`${c.channel_id} (live) `],
          `live:${c.channel_id}`,
        )
        keep(made.detach)
        return made.box
      })
    })

    const exported = session.exports.filter((e) => e.export_status === "exported" && e.video_id !== null)
    const rawAssets = session.rtstreams.filter((r) => r.exported_asset_id !== null)
    await replacePlayers(
      "exports",
      [
        ...session.exports.map((e) => `${e.video_channel_id}:${e.export_status}:${e.video_id}`),
        ...rawAssets.map((r) => r.exported_asset_id),
      ].join(","),
      async (keep) => {
        const nodes: Array<Node> = []
        const pending = session.exports.filter((e) => e.export_status !== "exported")
        for (const e of pending) {
          nodes.push(
            h(
              "p",
              {},
              `${e.video_channel_id ?? "audio"}: `,
              statusBadge(e.export_status),
              e.error === null ? "" : ` ${e.error.message}`,
            ),
          )
        }
        for (const e of exported) {
          const videoId = e.video_id ?? ""
          try {
            const video = await api<VideoView>(path`/collection/${collectionId}/video/${videoId}`)
            const made = player(
              { hls: video.stream_url, files: [video.download_url] },
              [
                `${e.video_channel_id ?? "audio"} · ${video.length.toFixed(1)} s · `,
                h("a", { href: video.player_url, target: "_blank" }, "player"),
                " · ",
                h("a", { href: video.stream_url }, "HLS"),
                " · ",
                h("a", { href: video.download_url }, "MP4"),
              ],
              `export:${videoId}`,
            )
            keep(made.detach)
            nodes.push(made.box)
          } catch (error) {
            nodes.push(errorBox(`Export ${videoId}: ${describeError(error)}`))
          }
        }
        if (rawAssets.length > 0) {
          const items: Array<Node> = []
          for (const r of rawAssets) {
            const assetId = r.exported_asset_id ?? ""
            const kind = assetId.startsWith("a-") ? "audio" : "video"
            try {
              const asset = await api<RawAssetView>(path`/collection/${collectionId}/${kind}/${assetId}`)
              items.push(
                h(
                  "li",
                  {},
                  `${asset.channel_id} (${asset.type}, ${asset.length.toFixed(1)} s): `,
                  h("a", { href: asset.download_url, class: "raw-asset" }, assetId),
                ),
              )
            } catch (error) {
              items.push(h("li", {}, `${assetId}: ${describeError(error)}`))
            }
          }
          nodes.push(h("div", { class: "card" }, h("strong", {}, "Raw assets"), h("ul", {}, items)))
        }
        if (nodes.length === 0) nodes.push(h("p", { class: "empty" }, "No exports yet."))
        return [h("div", { class: "grid" }, ...nodes)]
      },
    )

    const deliveries = await api<WebhookDeliveryList>(path`/capture/session/${sessionId}/webhooks`).catch(
      (error: unknown) => error,
    )
    fill(
      sections.webhooks,
      deliveries instanceof Error
        ? errorBox(describeError(deliveries))
        : webhooksTable((deliveries as WebhookDeliveryList).deliveries),
    )
    const ai = await Promise.all(session.rtstreams.map(aiSection))
    fill(sections.ai, ...(ai.length === 0 ? [h("p", { class: "empty" }, "No rtstreams yet.")] : ai))
  }

  let reload: ReturnType<typeof setTimeout> | undefined
  const reloadSoon = () => {
    clearTimeout(reload)
    reload = setTimeout(() => void load(), 250)
  }
  void load()
  const unsubscribe = feed.subscribe((message) => {
    if (message.capture_session_id === sessionId) reloadSoon()
    else if (message.rtstream_id !== undefined && rtstreamIds.has(message.rtstream_id)) reloadSoon()
  })
  return () => {
    stopped = true
    clearTimeout(reload)
    clearTimeout(again)
    unsubscribe()
    for (const detach of [...players.live.detach, ...players.exports.detach]) detach()
  }
}
