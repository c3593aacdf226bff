/** Signing in: an API key and a collection, checked with `GET /collection/{cid}` before they are kept. */
import { ApiError, api, credentials, describeError, path } from "./Api.js"
import { errorBox, h } from "./Dom.js"

export const signInPage = (root: HTMLElement, onSignedIn: () => void, notice?: string): void => {
  const key = h("input", {
    name: "api_key",
    type: "password",
    autocomplete: "off",
    placeholder: "sk-…",
    required: true,
    size: 40,
  })
  const collection = h("input", { name: "collection_id", value: credentials.collectionId, required: true })
  const message = h("div", { id: "sign-in-error" }, notice === undefined ? null : errorBox(notice))
  const submit = h("button", { type: "submit" }, "Sign in")
  const form = h(
    "form",
    {
      class: "inline",
      onsubmit: (event: Event) => {
        event.preventDefault()
        submit.disabled = true
        message.replaceChildren()
        const apiKey = key.value.trim()
        const collectionId = collection.value.trim() || "default"
        api(path`/collection/${collectionId}`, { apiKey })
          .then(() => {
            credentials.signIn(apiKey, collectionId)
            onSignedIn()
          })
          .catch((error: unknown) => {
            const text =
              error instanceof ApiError && error.status === 401
                ? `That API key was refused: ${error.message}`
                : error instanceof ApiError && error.code === "forbidden"
                  ? "The console needs an API key (sk-…), not a client token."
                  : `Cannot sign in: ${describeError(error)}`
            message.replaceChildren(errorBox(text))
          })
          .finally(() => {
            submit.disabled = false
          })
      },
    },
    h("label", {}, "API key", key),
    h("label", {}, "Collection", collection),
    submit,
  )
  root.replaceChildren(
    h(
      "div",
      { class: "card" },
      h("h1", {}, "Sign in"),
      h(
        "p",
        { class: "muted" },
        "The key stays in this tab (sessionStorage) and goes to the API as x-access-token; `capture keys create` makes one.",
      ),
      form,
      message,
    ),
  )
  key.focus()
}
