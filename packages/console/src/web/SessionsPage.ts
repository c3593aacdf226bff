/**
 * A collection's sessions, newest first, filtered by status and end user (`GET
 * /collection/{cid}/capture/session`); statuses change in place as the WebSocket reports them.
 */
import type { CaptureSession, SessionList } from "@capture/protocol"
import { api, credentials, describeError, path } from "./Api.js"
import { errorBox, fill, h, statusBadge, time } from "./Dom.js"
import type { LiveFeed } from "./LiveFeed.js"

const STATUSES = ["created", "starting", "active", "stopping", "stopped", "exported", "failed"]

const row = (session: CaptureSession): HTMLTableRowElement =>
  h(
    "tr",
    { "data-session-id": session.id },
    h("td", {}, h("a", { href: `#/session/${encodeURIComponent(session.id)}`, class: "mono" }, session.id)),
    h("td", {}, session.end_user_id),
    h("td", { class: "status-cell" }, statusBadge(session.status)),
    h("td", {}, session.channels.map((c) => c.channel_id).join(", ") || "—"),
    h("td", {}, time(session.created_at)),
    h("td", { class: "updated-cell" }, time(session.updated_at)),
  )

/** Renders the page into `root`; returns what stops its live updates. */
export const sessionsPage = (root: HTMLElement, feed: LiveFeed, query: URLSearchParams): (() => void) => {
  const status = query.get("status") ?? ""
  const endUser = query.get("end_user_id") ?? ""
  const statusSelect = h(
    "select",
    { name: "status" },
    h("option", { value: "" }, "any status"),
    STATUSES.map((s) => h("option", { value: s, selected: s === status }, s)),
  )
  const endUserInput = h("input", { name: "end_user_id", value: endUser, placeholder: "any end user" })
  const filters = h(
    "form",
    {
      class: "inline",
      onsubmit: (event: Event) => {
        event.preventDefault()
        const next = new URLSearchParams()
        if (statusSelect.value !== "") next.set("status", statusSelect.value)
        if (endUserInput.value.trim() !== "") next.set("end_user_id", endUserInput.value.trim())
        location.hash = `#/sessions?${next}`
      },
    },
    h("label", {}, "Status", statusSelect),
    h("label", {}, "End user", endUserInput),
    h("button", { type: "submit" }, "Filter"),
  )
  const body = h("tbody", { id: "sessions" })
  const message = h("div")
  const more = h("div")
  root.replaceChildren(
    h("h1", {}, "Sessions"),
    filters,
    message,
    h(
      "table",
      {},
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Session", "End user", "Status", "Channels", "Created", "Updated"].map((t) => h("th", {}, t)),
        ),
      ),
      body,
    ),
    more,
  )

  // Sessions the socket announced that the list did not have yet (the read model may lag the
  // event by a moment): the first page is read again, a few times at most.
  const awaited = new Set<string>()
  // The last status the socket announced per session.
  const latest = new Map<string, string>()
  let retries = 0
  let reload: ReturnType<typeof setTimeout> | undefined

  const load = async (cursor?: string): Promise<void> => {
    const params = new URLSearchParams({ limit: "50" })
    if (status !== "") params.set("status", status)
    if (endUser !== "") params.set("end_user_id", endUser)
    if (cursor !== undefined) params.set("cursor", cursor)
    try {
      const page = await api<SessionList>(
        `${path`/collection/${credentials.collectionId}/capture/session`}?${params}`,
      )
      message.replaceChildren()
      if (cursor === undefined) body.replaceChildren()
      for (const session of page.sessions) {
        body.querySelector(`tr[data-session-id="${CSS.escape(session.id)}"]`)?.remove()
        const listed = row(session)
        // The read model may not have caught up with what the socket already announced.
        const heard = latest.get(session.id)
        if (heard !== undefined && heard !== session.status) {
          listed.querySelector(".status-cell")?.replaceChildren(statusBadge(heard))
        }
        body.append(listed)
      }
      if (body.childElementCount === 0) {
        body.append(h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No sessions match.")))
      }
      if (cursor === undefined) {
        for (const id of awaited)
          if (body.querySelector(`tr[data-session-id="${CSS.escape(id)}"]`)) awaited.delete(id)
        if (awaited.size > 0 && retries < 5) {
          retries++
          clearTimeout(reload)
          reload = setTimeout(() => void load(), 1000)
        }
      }
      const nextPage = page.next_page
      fill(
        more,
        nextPage === null
          ? null
          : h("button", { type: "button", onclick: () => void load(nextPage) }, "More"),
      )
    } catch (error) {
      message.replaceChildren(errorBox(`Cannot list sessions: ${describeError(error)}`))
    }
  }
  void load()

  // A status changes in place; a session not listed yet (just created) reloads the first page.
  const unsubscribe = feed.subscribe((message) => {
    if (message.channel !== "capture_session" || message.capture_session_id === undefined) return
    const listed = body.querySelector(`tr[data-session-id="${CSS.escape(message.capture_session_id)}"]`)
    if (listed !== null) {
      const id = message.capture_session_id
      const status = message.status ?? ""
      latest.set(id, status)
      listed.querySelector(".status-cell")?.replaceChildren(statusBadge(status))
      // The rest of the row (channels, times) from the read model, once it has caught up with
      // the latest status heard (an answer to an earlier event must not put an older one back).
      api<CaptureSession>(path`/collection/${credentials.collectionId}/capture/session/${id}`)
        .then((session) => {
          const current = body.querySelector(`tr[data-session-id="${CSS.escape(id)}"]`)
          if (current !== null && session.status === latest.get(id)) current.replaceWith(row(session))
        })
        .catch(() => {})
      return
    }
    awaited.add(message.capture_session_id)
    retries = 0
    clearTimeout(reload)
    reload = setTimeout(() => void load(), 300)
  })
  return () => {
    clearTimeout(reload)
    unsubscribe()
  }
}
