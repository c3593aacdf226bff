/**
 * HTTP routes written once: the server matches a route pattern (`/capture/session/:session_id/stop`)
 * and a client fills the same pattern in with `pathOf`, so the two cannot drift apart. The routes
 * themselves live beside the shapes they carry (`SEGMENT_ROUTE` in `SegmentIngest`, …).
 */

/**
 * The parameters of a route pattern: each `:name` segment, and `*` for a trailing wildcard.
 *
 * @example
 * type P = RouteParams<"/media/:video_id/*"> // "video_id" | "*"
 */
export type RouteParams<Route extends string> = Route extends `${infer Head}/${infer Tail}`
  ? RouteParams<Head> | RouteParams<Tail>
  : Route extends `:${infer Name}`
    ? Name
    : Route extends "*"
      ? "*"
      : never

/**
 * Fills a route pattern in. Each parameter is percent-encoded as one path segment (`mic:default` →
 * `mic%3Adefault`); a `*` value may hold several segments (`raw/mic_default.m4a`), each encoded.
 *
 * @example
 * pathOf("/capture/session/:session_id/stop", { session_id: "cap-1" }) // "/capture/session/cap-1/stop"
 */
export const pathOf = <Route extends string>(
  route: Route,
  params: { readonly [Name in RouteParams<Route>]: string | number },
): string => {
  const values = params as Readonly<Record<string, string | number>>
  return route
    .split("/")
    .map((segment) => {
      if (segment === "*") return String(values["*"]).split("/").map(encodeURIComponent).join("/")
      return segment.startsWith(":") ? encodeURIComponent(String(values[segment.slice(1)])) : segment
    })
    .join("/")
}
