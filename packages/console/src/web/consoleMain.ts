/**
 * The console (`/console`): a hash router over three pages (sign in, sessions, one session) and
 * the collection's live feed. Nothing secret goes in the URL: the API key is in sessionStorage.
 */
import { credentials } from "./Api.js"
import { LiveFeed } from "./LiveFeed.js"
import { sessionPage } from "./SessionPage.js"
import { sessionsPage } from "./SessionsPage.js"
import { signInPage } from "./SignInPage.js"

const root = document.getElementById("app") as HTMLElement
const liveBadge = document.getElementById("live") as HTMLElement
const collectionLabel = document.getElementById("collection") as HTMLElement
const signOut = document.getElementById("sign-out") as HTMLButtonElement

let feed: LiveFeed | undefined
let leave: (() => void) | undefined

const showLive = (state: string) => {
  liveBadge.dataset.state = state
  liveBadge.textContent = state === "live" ? "live" : state === "connecting" ? "connecting…" : "offline"
}

const route = (): void => {
  leave?.()
  leave = undefined
  if (credentials.apiKey === null) {
    feed?.stop()
    feed = undefined
    signOut.hidden = true
    collectionLabel.textContent = ""
    signInPage(root, () => {
      if (location.hash.startsWith("#/session")) route()
      else location.hash = "#/sessions"
    })
    return
  }
  signOut.hidden = false
  collectionLabel.textContent = `collection ${credentials.collectionId}`
  if (feed === undefined) {
    feed = new LiveFeed(credentials.collectionId, showLive)
    feed.start()
  }
  const hash = location.hash.replace(/^#/, "")
  const [where = "", query = ""] = hash.split("?")
  const session = /^\/session\/([^/]+)$/.exec(where)
  if (session !== null) leave = sessionPage(root, feed, decodeURIComponent(session[1] ?? ""))
  else leave = sessionsPage(root, feed, new URLSearchParams(query))
}

signOut.addEventListener("click", () => {
  credentials.signOut()
  location.hash = "#/"
  route()
})
window.addEventListener("hashchange", route)
route()
