/** Building the page from plain DOM: text always goes in as text, never as HTML. */

type Child = Node | string | number | null | undefined | false
type Props = Record<string, string | number | boolean | undefined | ((event: Event) => void)>

/** `<tag props>children</tag>`: `on…` props are listeners, `true` an empty attribute, `false`/undefined none. */
export const h = <K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: ReadonlyArray<Child | ReadonlyArray<Child>>
): HTMLElementTagNameMap[K] => {
  const element = document.createElement(tag)
  for (const [name, value] of Object.entries(props)) {
    if (typeof value === "function") element.addEventListener(name.slice(2).toLowerCase(), value)
    else if (value === true) element.setAttribute(name, "")
    else if (value !== undefined && value !== false) element.setAttribute(name, String(value))
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue
    element.append(typeof child === "object" ? child : String(child))
  }
  return element
}

/** A session status (or delivery status) as a badge, `data-status` for styling and tests. */
export const statusBadge = (status: string | null): HTMLElement =>
  h("span", { class: "status", "data-status": status ?? "" }, status ?? "—")

/** An ISO time as the browser's local date and time, the ISO text on hover. */
export const time = (iso: string | null | undefined): HTMLElement =>
  iso === null || iso === undefined || iso === ""
    ? h("span", { class: "muted" }, "—")
    : h("time", { datetime: iso, title: iso }, new Date(iso).toLocaleString())

/** An error box (a failed call, a refusal). */
export const errorBox = (message: string): HTMLElement => h("div", { class: "error", role: "alert" }, message)

/** Replaces `parent`'s children with `children`. */
export const fill = (parent: Element, ...children: ReadonlyArray<Child>): void => {
  parent.replaceChildren()
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue
    parent.append(typeof child === "object" ? child : String(child))
  }
}
